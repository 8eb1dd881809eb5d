"""`python -m benchmark profile`: op categories from real profiler events, and the verb as a user
runs it (the category table, a record, the Chrome trace beside it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmark.commands.profile import CATEGORIES, categorize, category, label_losses
from benchmark.record import read_records, validate
from rcnn.layers import dispatch, nms, roi_align

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["aten::mkldnn_convolution", "aten::convolution", "aten::conv2d"], "conv fwd"),
        (["aten::convolution_backward", "autograd::engine::evaluate_function: Conv"], "conv bwd"),
        (["aten::copy_", "aten::contiguous", "aten::convolution_backward"], "conv bwd"),
        (["aten::copy_", "aten::contiguous", "aten::convolution", "aten::conv2d"], "conv fwd"),
        (["aten::copy_", "aten::_to_copy", "aten::to", "aten::conv2d"], "h2d copies"),
        (["aten::add_", "autograd::engine::evaluate_function: ConvolutionBackward0"], "other ops"),
        (["aten::addmm", "aten::linear"], "matmul"),
        (["aten::mm", "autograd::engine::evaluate_function: AddmmBackward0"], "matmul"),
        (["aten::index", "rcnn::roi_align"], "roi ops"),
        (["torchvision::nms", "rcnn::batched_nms"], "nms"),
        (["aten::abs", "rcnn::loss"], "losses"),
        (["aten::add_", "Optimizer.step#SGD.step"], "optimizer"),
        (["aten::copy_", "aten::_to_copy", "aten::to"], "h2d copies"),
        (["aten::stack", "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__"], "data"),
        (["aten::relu_"], "other ops"),
    ],
)
def test_an_op_goes_to_the_category_of_its_scopes_then_its_name(names, expected):
    assert category(names) == expected


class _Head(torch.nn.Module):
    """A conv, a linear layer, a loss evaluator, roi_align and nms: one of each category."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.fc = torch.nn.Linear(8 * 4 * 4, 4)
        self.loss_evaluator = lambda logits: F.cross_entropy(logits, torch.tensor([1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv(x)
        boxes = torch.tensor([[0.0, 2.0, 2.0, 20.0, 20.0]])
        pooled = roi_align(features, boxes, (4, 4), 1.0, 2)
        nms(boxes[:, 1:], torch.tensor([0.9]), 0.5)
        return self.loss_evaluator(self.fc(pooled.flatten(1)))


@pytest.fixture
def native_ops(monkeypatch):
    """Native roi_align and nms: many small aten ops that only their label can group."""
    monkeypatch.setenv("RCNN_OPS", "native")
    dispatch.reset()
    yield
    monkeypatch.delenv("RCNN_OPS")
    dispatch.reset()


def test_categories_of_a_real_step_add_up_to_its_wall_time(native_ops):
    torch.manual_seed(0)
    head = _Head()
    label_losses(head)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    x = torch.rand(1, 3, 32, 32)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = torch.profiler.record_function("step")  # a scope that is no category
        with start:
            loss = head(x)
            loss.backward()
            optimizer.step()
    events = prof.events()
    wall_s = sum(e.self_cpu_time_total for e in events) / 1e6 * 1.5  # plus some host time
    table, clock = categorize(events, wall_s)
    assert clock == "host" and [c["name"] for c in table] == list(CATEGORIES)
    ms = {c["name"]: c["ms"] for c in table}
    for name in ("conv fwd", "conv bwd", "matmul", "roi ops", "nms", "losses", "optimizer"):
        assert ms[name] > 0, name
    assert sum(c["share"] for c in table) == pytest.approx(1.0)
    assert ms["host (Python)"] == pytest.approx(wall_s * 1e3 / 3, rel=1e-6)


def test_profile_train_prints_the_table_and_writes_the_trace_beside_the_record(tmp_path):
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k != "RESULTS_DIR"}
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmark", "profile", "--model", "faster_rcnn_R_18_FPN_quick",
            "--mode", "train", "--device", "cpu", "--size", "64x96", "--data", "synthetic:2",
            "--iters", "2", "--warmup", "1", "--results", str(results),
        ],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "USDT" not in done.stderr and "ERROR" not in done.stderr  # Kineto's lines: the log
    records, problems = read_records([results])
    assert problems == [] and len(records) == 1
    r = records[0]
    assert validate(r) == [] and (r["status"], r["mode"]) == ("ok", "profile")
    assert r["measured_iters"] == 2 and r["throughput_img_s"] > 0
    p = r["profile"]
    assert p["activities"] == ["CPU"] and p["op_times"] == "host"
    ms = {c["name"]: c["ms"] for c in p["categories"]}
    for name in ("conv fwd", "conv bwd", "roi ops", "nms", "losses", "optimizer"):
        assert ms[name] > 0, name
    assert sum(ms.values()) == pytest.approx(r["step_time_ms"]["mean"] * 2, rel=1e-3)
    assert ms["conv fwd"] > ms["nms"]  # a backbone's convolutions outweigh a few hundred boxes
    for c in p["categories"]:
        assert f"{c['name']:<14} {c['ms']:>10.1f}" in done.stdout
    trace = json.loads((results / "runs" / r["run_id"] / p["trace"]).read_text())
    names = {e.get("name") for e in trace["traceEvents"]}
    assert {"rcnn::roi_align", "rcnn::loss"} <= names


def test_a_run_that_fails_inside_the_window_records_it_and_exits_cleanly(tmp_path):
    """A NaN loss mid-window: the profiler is switched off on the way out (left on, torch
    crashes at interpreter exit: rc 139 instead of the harness's nan code)."""
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k != "RESULTS_DIR"}
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmark", "profile", "--model", "faster_rcnn_R_18_FPN_quick",
            "--device", "cpu", "--size", "64x96", "--data", "synthetic:2", "--iters", "4",
            "--warmup", "1", "--results", str(results),
            "SOLVER.BASE_LR", "50.0", "SOLVER.WARMUP_ITERS", "0",
        ],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("error: NonFiniteLossError")
    records, _ = read_records([results])
    assert [(r["status"], r["mode"]) for r in records] == [("nan", "profile")]


def test_profile_impl_torchvision_splits_the_peers_step_into_the_same_categories(tmp_path):
    """`--impl torchvision`: compare's Mask R-CNN training step of the peer, its conv and
    non-conv time apart, its roi ops, nms and losses found by the same rules (its ops are
    torchvision::*, its loss functions labelled for the run), and none of ours ran."""
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if k != "RESULTS_DIR"}
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmark", "profile", "--model", "e2e_mask_rcnn_R_50_FPN_1x",
            "--impl", "torchvision", "--mode", "train", "--device", "cpu", "--size", "64x96",
            "--batch", "1", "--iters", "1", "--warmup", "1", "--threads", "1",
            "--results", str(results),
        ],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records, problems = read_records([results])
    assert problems == [] and len(records) == 1
    r = records[0]
    assert validate(r) == [] and (r["status"], r["impl"]) == ("ok", "torchvision")
    assert r["dataset"]["name"] == "compare-synthetic"
    shares = {c["name"]: c["share"] for c in r["profile"]["categories"]}
    conv = shares["conv fwd"] + shares["conv bwd"]
    assert 0.05 < conv < 0.95
    for name in ("matmul", "roi ops", "nms", "losses", "optimizer"):
        assert shares[name] > 0, name
    trace = json.loads((results / "runs" / r["run_id"] / r["profile"]["trace"]).read_text())
    names = {e.get("name") for e in trace["traceEvents"]}
    assert {"torchvision::roi_align", "torchvision::nms", "rcnn::loss"} <= names
    assert "rcnn::roi_align" not in names  # our dispatcher's label: ours did not run
