"""Detectron ImageNet .pkl backbones: renaming, affine BN, and a loader that runs no code."""

import os
import pickle

import numpy as np
import pytest
import torch
from ckpt_models import detectron_blobs, tiny_detector

from rcnn.checkpoint import (
    CheckpointError,
    from_detectron,
    load_restricted_pickle,
    load_weights,
    read_weights,
)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return tiny_detector()


def write_pickle(path, obj, protocol=2) -> str:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return str(path)


@pytest.mark.parametrize(
    ("blob", "key"),
    [
        ("conv1_w", "backbone.body.stem.conv1.weight"),
        ("res_conv1_bn_s", "backbone.body.stem.bn1.weight"),
        ("res_conv1_bn_b", "backbone.body.stem.bn1.bias"),
        ("res2_0_branch2a_w", "backbone.body.layer1.0.conv1.weight"),
        ("res2_0_branch2a_bn_s", "backbone.body.layer1.0.bn1.weight"),
        ("res2_0_branch2b_bn_b", "backbone.body.layer1.0.bn2.bias"),
        ("res3_3_branch2c_w", "backbone.body.layer2.3.conv3.weight"),
        ("res4_22_branch2c_bn_s", "backbone.body.layer3.22.bn3.weight"),
        ("res2_0_branch1_w", "backbone.body.layer1.0.downsample.0.weight"),
        ("res5_0_branch1_bn_s", "backbone.body.layer4.0.downsample.1.weight"),
        ("res5_0_branch1_bn_b", "backbone.body.layer4.0.downsample.1.bias"),
    ],
)
def test_detectron_names(blob, key):
    weights = from_detectron({blob: np.ones(3, np.float32)})
    assert key in weights.state


def test_affine_bn_becomes_frozen_bn_with_unit_statistics():
    s = np.array([0.5, 2.0], np.float32)
    b = np.array([-1.0, 3.0], np.float32)
    state = from_detectron({"res_conv1_bn_s": s, "res_conv1_bn_b": b}).state
    assert torch.equal(state["backbone.body.stem.bn1.weight"], torch.from_numpy(s))
    assert torch.equal(state["backbone.body.stem.bn1.bias"], torch.from_numpy(b))
    assert torch.equal(state["backbone.body.stem.bn1.running_mean"], torch.zeros(2))
    assert torch.equal(state["backbone.body.stem.bn1.running_var"], torch.ones(2))
    with_eps = from_detectron({"res_conv1_bn_s": s}, bn_eps=1e-5).state
    assert torch.equal(with_eps["backbone.body.stem.bn1.running_var"], torch.full((2,), 1 - 1e-5))


def test_classifier_and_momentum_blobs_are_dropped():
    blobs = {
        "fc1000_w": np.zeros((10, 4), np.float32),
        "fc1000_b": np.zeros(10, np.float32),
        "pred_w": np.zeros((10, 4), np.float32),
        "pred_b": np.zeros(10, np.float32),
        "conv1_w_momentum": np.zeros((4, 3, 7, 7), np.float32),
        "conv1_w": np.zeros((4, 3, 7, 7), np.float32),
    }
    weights = from_detectron(blobs)
    assert list(weights.state) == ["backbone.body.stem.conv1.weight"]
    assert sorted(weights.dropped) == sorted(set(blobs) - {"conv1_w"})


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("wrapped", [True, False])
def test_pkl_loads_into_backbone_exactly(tmp_path, model, protocol, wrapped):
    blobs = detectron_blobs(model)
    blobs["fc1000_w"] = np.zeros((10, 16), np.float32)
    path = write_pickle(tmp_path / "R-50.pkl", {"blobs": blobs} if wrapped else blobs, protocol)
    target = tiny_detector()
    before_head = target.rpn.head.conv.weight.clone()
    report = load_weights(path, target)
    assert report.ok and len(report.loaded) == len(blobs) - 1 + 2 * sum(
        k.endswith("_bn_s") for k in blobs
    )
    got = target.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith("backbone.body."):
            continue
        if key.endswith("running_mean"):
            assert torch.equal(got[key], torch.zeros_like(value)), key
        elif key.endswith("running_var"):
            assert torch.equal(got[key], torch.ones_like(value)), key
        else:
            assert torch.equal(got[key], value), key
    # heads are not in an ImageNet file and stay as initialised
    assert torch.equal(target.rpn.head.conv.weight, before_head)


def test_pkl_missing_a_backbone_blob_is_reported(tmp_path, model):
    blobs = detectron_blobs(model)
    del blobs["res3_1_branch2b_w"]
    path = write_pickle(tmp_path / "R-50.pkl", blobs)
    with pytest.raises(CheckpointError) as info:
        load_weights(path, tiny_detector())
    message = str(info.value)
    assert message.startswith(f"{path}: checkpoint does not match the model")
    assert "backbone.body.layer2.1.conv2.weight" in message


def test_unknown_blob_is_reported_not_guessed(tmp_path, model):
    blobs = detectron_blobs(model)
    blobs["fpn_inner_res5_2_sum_w"] = np.zeros((2, 2), np.float32)
    path = write_pickle(tmp_path / "x.pkl", blobs)
    with pytest.raises(CheckpointError, match="unexpected in the checkpoint \\(1\\): fpn_inner"):
        load_weights(path, tiny_detector())


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > marker",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch, protocol):
    monkeypatch.chdir(tmp_path)
    path = write_pickle(tmp_path / "evil.pkl", {"blobs": {"conv1_w": RunsCode()}}, protocol)
    with pytest.raises(CheckpointError) as info:
        read_weights(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused to load")
    assert f"{os.system.__module__}.system" in message
    assert not (tmp_path / "marker").exists()


def test_other_globals_are_refused(tmp_path):
    path = write_pickle(tmp_path / "x.pkl", {"f": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="refused to load: the pickle asks for torch"):
        load_restricted_pickle(path)


def test_python2_style_pickle_with_latin1_bytes(tmp_path):
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    blobs = {"conv1_w": array, "note": b"\xe9t\xe9"}
    path = write_pickle(tmp_path / "py2.pkl", blobs, protocol=2)
    loaded = load_restricted_pickle(path)
    assert np.array_equal(loaded["conv1_w"], array) and loaded["conv1_w"].dtype == np.float32


def test_truncated_pkl(tmp_path, model):
    full = pickle.dumps(detectron_blobs(model), protocol=2)
    path = tmp_path / "cut.pkl"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(CheckpointError, match=f"^{path}: not a readable pickle"):
        read_weights(path)


def test_pkl_that_is_not_a_dict(tmp_path):
    path = write_pickle(tmp_path / "list.pkl", [1, 2, 3])
    with pytest.raises(CheckpointError, match=f"^{path}: expected a dict of Detectron blobs"):
        read_weights(path)


def test_missing_pkl(tmp_path):
    path = tmp_path / "R-50.pkl"
    with pytest.raises(CheckpointError, match=f"^{path}: checkpoint file not found"):
        read_weights(path)
