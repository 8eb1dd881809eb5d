"""Save and resume: exact round trip, atomic writes, last_checkpoint, RNG states."""

import os
import random

import numpy as np
import pytest
import torch
from ckpt_models import tiny_detector
from torch import nn

from rcnn import compat
from rcnn.checkpoint import (
    CheckpointError,
    last_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rcnn.checkpoint import training as training_module
from rcnn.config import load_config
from rcnn.solver import WarmupMultiStepLR

# torch.amp.GradScaler("cpu") arrived in torch 2.3; 2.1-2.2 have no CPU loss scaler to save
CPU_SCALER = compat.torch_version() >= (2, 3)


def trained_state(seed: int = 0):
    torch.manual_seed(seed)
    model = tiny_detector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    # the project's schedule (milestones in a list): torch's MultiStepLR keeps a Counter, which
    # torch 2.1's weights_only loader refuses
    scheduler = WarmupMultiStepLR(optimizer, [2, 4], gamma=0.1, warmup_iters=0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0) if CPU_SCALER else None
    for _ in range(3):
        out = model.backbone.body.stem.conv1(torch.randn(1, 3, 16, 16)).sum()
        out = (
            out
            + model.rpn.head.conv.weight.sum()
            + model.roi_heads.box.predictor.cls_score.weight.sum()
        )
        optimizer.zero_grad()
        out.backward()
        optimizer.step()
        scheduler.step()
    return model, optimizer, scheduler, scaler


@pytest.mark.skipif(not CPU_SCALER, reason="this torch has no CPU GradScaler (torch >= 2.3)")
def test_round_trip_is_exact(tmp_path):
    model, optimizer, scheduler, scaler = trained_state()
    cfg = load_config(None, ["SOLVER.MAX_ITER", "7", "MODEL.DEVICE", "cpu"])
    extra = {"rng": rng_state(), "sampler": {"epoch": 1, "position": 12}}
    path = save_checkpoint(
        tmp_path / "model_0000003.pth", model, optimizer, scheduler, scaler, 3, cfg, extra
    )

    torch.manual_seed(99)
    model2 = tiny_detector()
    optimizer2 = torch.optim.SGD(model2.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)
    scheduler2 = WarmupMultiStepLR(optimizer2, [2, 4], gamma=0.1, warmup_iters=0)
    scaler2 = torch.amp.GradScaler("cpu")
    resumed = load_checkpoint(path, model2, optimizer2, scheduler2, scaler2)

    assert resumed.iteration == 3
    assert resumed.restored == ["optimizer", "scheduler", "scaler"]
    assert resumed.report.ok
    for key, value in model.state_dict().items():
        assert torch.equal(model2.state_dict()[key], value), key
    for a, b in zip(optimizer.param_groups, optimizer2.param_groups, strict=True):
        assert a["lr"] == b["lr"]
    buffers = [
        (optimizer.state[p]["momentum_buffer"], optimizer2.state[p2]["momentum_buffer"])
        for p, p2 in zip(model.parameters(), model2.parameters(), strict=True)
        if p in optimizer.state
    ]
    assert len(buffers) == 3 and all(torch.equal(a, b) for a, b in buffers)
    assert scheduler2.state_dict() == scheduler.state_dict()
    assert scaler2.get_scale() == 1024.0
    assert load_config_text(resumed.config).SOLVER.MAX_ITER == 7
    assert resumed.extra["sampler"] == {"epoch": 1, "position": 12}


def load_config_text(text: str):
    from yacs.config import CfgNode

    return CfgNode.load_cfg(text)


def test_saved_file_loads_with_weights_only(tmp_path):
    model, optimizer, scheduler, scaler = trained_state()
    path = save_checkpoint(
        tmp_path / "c.pth", model, optimizer, scheduler, scaler, 5, load_config(None),
        {"rng": rng_state()},
    )  # fmt: skip
    data = torch.load(path, weights_only=True)
    assert set(data) == {
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "iteration",
        "config",
        "extra",
    }
    assert isinstance(data["config"], str) and "MODEL:" in data["config"]


def test_model_only_checkpoint(tmp_path):
    model, optimizer, _, _ = trained_state()
    path = save_checkpoint(tmp_path / "m.pth", model)
    resumed = load_checkpoint(path, tiny_detector(), optimizer)
    assert resumed.iteration == 0 and resumed.config is None and resumed.extra == {}
    assert resumed.restored == []


def test_wrapped_model_is_saved_without_module_prefix(tmp_path):
    model, *_ = trained_state()
    path = save_checkpoint(tmp_path / "dp.pth", nn.DataParallel(model))
    keys = torch.load(path, weights_only=True)["model"].keys()
    assert "backbone.body.stem.conv1.weight" in keys


def test_optimizer_that_does_not_fit(tmp_path):
    model, optimizer, _, _ = trained_state()
    path = save_checkpoint(tmp_path / "c.pth", model, optimizer)
    other = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    with pytest.raises(CheckpointError, match=f"^{path}: cannot restore the optimizer"):
        load_checkpoint(path, tiny_detector(), other)


def test_last_checkpoint_follows_saves(tmp_path):
    assert last_checkpoint(tmp_path) is None
    model = tiny_detector()
    save_checkpoint(tmp_path / "model_0000010.pth", model, iteration=10)
    save_checkpoint(tmp_path / "model_0000020.pth", model, iteration=20)
    latest = last_checkpoint(tmp_path)
    assert latest == str(tmp_path / "model_0000020.pth")
    assert load_checkpoint(latest, tiny_detector()).iteration == 20


def test_last_checkpoint_with_an_absolute_path_as_maskrcnn_benchmark_writes(tmp_path):
    model = tiny_detector()
    path = save_checkpoint(tmp_path / "model_final.pth", model)
    (tmp_path / "last_checkpoint").write_text(os.path.abspath(path))
    assert last_checkpoint(tmp_path) == os.path.abspath(path)


def test_dangling_last_checkpoint(tmp_path):
    (tmp_path / "last_checkpoint").write_text("model_0000100.pth")
    with pytest.raises(CheckpointError, match="names model_0000100.pth, which does not exist"):
        last_checkpoint(tmp_path)


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = tiny_detector()
    path = save_checkpoint(tmp_path / "model_final.pth", model, iteration=1)
    good = (tmp_path / "model_final.pth").read_bytes()

    def dies_half_way(obj, f):
        f.write(b"PK\x03\x04partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(training_module.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, iteration=2)
    assert (tmp_path / "model_final.pth").read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]


def test_no_temp_files_left_after_saves(tmp_path):
    model = tiny_detector()
    for i in range(3):
        save_checkpoint(tmp_path / f"model_{i}.pth", model, iteration=i)
    assert sorted(os.listdir(tmp_path)) == [
        "last_checkpoint", "model_0.pth", "model_1.pth", "model_2.pth"
    ]  # fmt: skip


def draws():
    return (
        torch.rand(4).tolist(),
        [random.random() for _ in range(4)],
        np.random.rand(4).tolist(),
        random.gauss(0, 1),
        np.random.randn(),
    )


def test_rng_states_survive_a_checkpoint(tmp_path):
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    random.gauss(0, 1)  # leaves a cached gaussian in the state
    np.random.randn()
    path = save_checkpoint(tmp_path / "r.pth", tiny_detector(), extra={"rng": rng_state()})
    expected = draws()
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    set_rng_state(load_checkpoint(path, tiny_detector()).extra["rng"])
    assert draws() == expected
