"""MODEL.WEIGHT: nothing, a local file, or a named file that must already be in CHECKPOINT_DIR."""

import pickle

import pytest
import torch
from ckpt_models import detectron_blobs, tiny_detector

from rcnn.checkpoint import CheckpointError, load_weights, resolve_weight


@pytest.fixture
def ckpt_dir(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    monkeypatch.setenv("CHECKPOINT_DIR", str(folder))
    return folder


def test_empty_means_no_weights(ckpt_dir):
    assert resolve_weight("") is None
    assert load_weights("", tiny_detector()) is None


def test_local_path(tmp_path, ckpt_dir):
    path = tmp_path / "mine.pth"
    path.write_bytes(b"x")
    assert resolve_weight(str(path)) == str(path)


def test_missing_local_path(tmp_path, ckpt_dir):
    spec = str(tmp_path / "gone.pth")
    with pytest.raises(CheckpointError, match=f"^{spec}: weight file not found"):
        resolve_weight(spec)


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("catalog://ImageNetPretrained/MSRA/R-50", "R-50.pkl"),
        ("catalog://ImageNetPretrained/MSRA/R-101", "R-101.pkl"),
        ("catalog://ImageNetPretrained/FAIR/20171220/X-101-32x8d", "X-101-32x8d.pkl"),
        ("https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl", "R-50.pkl"),
        ("https://download.pytorch.org/models/resnet18-f37072fd.pth", "resnet18-f37072fd.pth"),
    ],
)
def test_named_weights_are_looked_up_by_base_name(ckpt_dir, spec, name):
    with pytest.raises(CheckpointError) as info:
        resolve_weight(spec)
    message = str(info.value)
    assert message.startswith(f"{spec}: downloads are disabled in this project")
    assert f"place {name} in {ckpt_dir}" in message and "CHECKPOINT_DIR" in message
    (ckpt_dir / name).write_bytes(b"x")
    assert resolve_weight(spec) == str(ckpt_dir / name)


def test_catalog_name_also_takes_a_pth(ckpt_dir):
    (ckpt_dir / "R-50.pth").write_bytes(b"x")
    assert resolve_weight("catalog://ImageNetPretrained/MSRA/R-50") == str(ckpt_dir / "R-50.pth")


def test_catalog_weight_loads_end_to_end(ckpt_dir):
    torch.manual_seed(0)
    source = tiny_detector()
    with open(ckpt_dir / "R-50.pkl", "wb") as f:
        pickle.dump({"blobs": detectron_blobs(source)}, f, protocol=2)
    target = tiny_detector()
    report = load_weights("catalog://ImageNetPretrained/MSRA/R-50", target)
    assert report.ok and report.source == str(ckpt_dir / "R-50.pkl")
    assert torch.equal(
        target.backbone.body.layer3[0].conv3.weight, source.backbone.body.layer3[0].conv3.weight
    )


def test_default_checkpoint_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("CHECKPOINT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match=f"place R-50.pkl in {tmp_path / 'checkpoints'}"):
        resolve_weight("catalog://ImageNetPretrained/MSRA/R-50")
