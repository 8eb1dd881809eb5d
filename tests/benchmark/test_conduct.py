"""Conduct budgets, enforced on the strict device: each run is a real `python -m benchmark`
process whose record's conduct (counted by the harness) is checked against the device's own
counters of the measured window (tests/benchmark/strict_window.py)."""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmark.__main__ import main
from benchmark.conduct import BLOCKING, READS, ConductCounter, Counts, broken, budget
from benchmark.record import read_records
from rcnn.device import resolve
from rcnn.layers.native.groups import window_groups

ROOT = Path(__file__).resolve().parents[2]
# The model's own host reads and blocking ops on the strict device's native ops (quick R-18,
# 64x64, synthetic data), by site: the file, and the modeling stage that called it. A new read
# or wait anywhere fails the tests below with its site.
RPN, BOX = "modeling/rpn/inference.py", "modeling/roi_heads/box_head/inference.py"
NMS = "layers/native/nms.py"
# one read per data-dependent stage: NMS's group ends (its plan), the RPN's and the box head's
# sizes per image
READS_PER_STEP = {f"{NMS} < {RPN}": 1, RPN: 1}  # training, batch 1
READS_PER_BATCH = {**READS_PER_STEP, f"{NMS} < {BOX}": 1, BOX: 1}  # inference, batch 2
# blocking ops: NMS's waits for its kept boxes (per block on this device, which has no NMS
# kernel), one nonzero for the RPN's boxes above min size and one for the box head's
# candidates; the poolers' split by level, the matcher's, the samplers' and the losses' masks
BLOCKING_PER_STEP = {
    f"{NMS} < {RPN}": 16,
    RPN: 1,
    "modeling/poolers.py": 4,
    "modeling/matcher.py": 2,
    "modeling/balanced_positive_negative_sampler.py": 4,
    "modeling/rpn/loss.py": 4,
    "modeling/roi_heads/box_head/loss.py": 2,
}
BLOCKING_PER_BATCH = {
    f"{NMS} < {RPN}": 46,
    RPN: 1,
    "modeling/poolers.py": 4,
    f"{NMS} < {BOX}": 4,
    BOX: 1,
}
PATCHED = (*READS, *BLOCKING, "to", "__getitem__", "__setitem__")
TINY = ["--model", "faster_rcnn_R_18_FPN_quick", "--device", "strict", "--size", "64x64"]


def run_on_strict(*argv: str, results: Path, **flags: str) -> tuple[dict, dict]:
    """(the record, the device's counters of the window) of one run on the strict device."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRICTDEV_", "RESULTS"))}
    paths = [str(ROOT / "tests"), str(ROOT), str(ROOT / "models")]
    env.update(PYTHONPATH=os.pathsep.join(paths), RCNN_DEVICE_PLUGIN="strictdev")
    env.update({f"STRICTDEV_{k.upper()}": v for k, v in flags.items()})
    script = ROOT / "tests" / "benchmark" / "strict_window.py"
    done = subprocess.run(
        [sys.executable, str(script), *argv, "--results", str(results)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    device = json.loads(done.stdout.strip().splitlines()[-1])
    records, problems = read_records([results])
    assert problems == [] and records[-1]["status"] == "ok", records[-1]["error"]
    return records[-1], device


def test_the_counter_counts_only_in_compute_and_leaves_torch_as_it_was():
    adapter, index = resolve("cpu")
    methods = {n: (n in vars(torch.Tensor), getattr(torch.Tensor, n)) for n in PATCHED}
    functions = {n: getattr(torch, n) for n in (*BLOCKING, "where")}
    counter = ConductCounter(adapter, index)
    counter.open()
    x = torch.arange(4.0)
    x.tolist()  # the data phase: not the model's compute, not counted
    counter.active = True
    x[torch.tensor(1)], x[1:], float(x[0]), x.to("cpu"), x.to(torch.int64)
    window_groups(torch.tensor([2, 2, 3]), torch.tensor([4, 4, 4]))  # the model's: one tolist
    adapter.synchronize(index)
    counts = counter.close(iterations=1)
    # an index read and a float() here, one in the model's code: the rest neither read nor
    # copy on the CPU
    assert (counts.host_reads, counts.model_host_reads, counts.syncs) == (3, 1, 1)
    assert counts.h2d_copies == 0 and counts.recompiles == 0
    assert {n: (n in vars(torch.Tensor), getattr(torch.Tensor, n)) for n in PATCHED} == methods
    assert {n: getattr(torch, n) for n in functions} == functions
    assert "synchronize" not in vars(adapter)


def test_the_counter_counts_blocking_ops_where_python_calls_them():
    """Ops a card blocks the host on, counted by the model's site; what torch runs inside C++
    (index_put_ with a mask) is not seen, so the record says its counts are a lower bound."""
    native_nms = importlib.import_module("rcnn.layers.native.nms")  # the package's nms: a function
    adapter, index = resolve("cpu")
    counter = ConductCounter(adapter, index)
    counter.open()
    counter.active = True
    x = torch.arange(6.0)
    mask = x > 2
    x[mask], torch.nonzero(mask), x.unique(), torch.where(mask), torch.equal(x, x)
    x.repeat_interleave(torch.tensor([1, 0, 2, 0, 0, 1])), torch.bincount(x.long())
    x.clone()[mask] = x[:3]
    # not blocking: a scalar into a mask (masked_fill), repeats known, where with values
    x.clone()[mask] = 0.0
    x.repeat_interleave(torch.ones(6, dtype=torch.int64), output_size=6), x.repeat_interleave(2)
    torch.where(mask, x, 0.0), x[1:], x[torch.tensor([0, 1])]
    x.clone().index_put_((mask,), x[:3])  # blocks on a card, unseen here
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    native_nms.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    counts = counter.close(iterations=1)
    assert counts.sync_ops - counts.model_sync_ops == 8 and counts.lower_bound
    assert counts.model_sync_ops_at == {"layers/native/nms.py": counts.model_sync_ops}
    assert counts.model_sync_ops > 0 and counts.host_reads == counts.model_host_reads


def test_the_read_budget_is_the_harness_s_and_the_model_s_reads_are_shown_beside_it():
    """One read per inference batch: the results. The model's reads (its data-dependent
    stages) are reported, not charged, else every inference record would flag a broken budget."""
    limits = budget("infer", "iteration", log_period=20, iterations=2, pinned=False)
    model_only = Counts(iterations=2, host_reads=2 + 8, model_host_reads=8)
    assert broken(model_only, limits, own_card=0) == []
    extra = Counts(iterations=2, host_reads=3 + 8, model_host_reads=8)
    assert broken(extra, limits, own_card=0) == [
        "harness host reads 1.50/iteration > 1.00 (the model's own besides: 4.00)"
    ]


def harness_reads(conduct: dict) -> int:
    return conduct["host_reads"] - conduct["model_host_reads"] + conduct["syncs"]


def per_iteration(at: dict[str, int], iterations: int) -> dict[str, float]:
    return {site: count / iterations for site, count in at.items()}


@pytest.mark.strictdev
def test_a_training_step_reads_once_and_its_batches_are_pinned_non_blocking(tmp_path):
    iters = 3
    r, device = run_on_strict(
        "train", *TINY, "--data", "synthetic:4", "--batch", "1", "--warmup", "1",
        "--iters", str(iters), results=tmp_path,
    )  # fmt: skip
    c = r["conduct"]
    # the device saw what the harness counted: every read, and only the timer's syncs
    assert c["iterations"] == iters and device["d2h"] == c["host_reads"]
    assert device["synchronize"] == 2 * iters + c["syncs"]
    assert harness_reads(c) == iters  # the losses, once per step
    assert per_iteration(c["model_reads_at"], iters) == READS_PER_STEP
    assert c["model_host_reads"] == sum(READS_PER_STEP.values()) * iters
    assert per_iteration(c["model_sync_ops_at"], iters) == BLOCKING_PER_STEP
    assert c["sync_ops"] == c["model_sync_ops"] == sum(BLOCKING_PER_STEP.values()) * iters
    # the device sees one more per step: the backward of a mask index (autograd's index_put,
    # inside C++), which is why the record says its count is a lower bound
    assert device["sync_ops"] == c["sync_ops"] + iters and c["lower_bound"]
    assert device["sync_ops_by_name"]["aten::index_put"] == iters
    # every batch copy in the window pinned and non-blocking (the adapter pins on this device)
    assert c["h2d_copies"] > 0
    assert device["h2d_pinned"] == c["h2d_pinned"] == c["h2d_copies"]
    assert device["h2d_non_blocking"] == c["h2d_non_blocking"] == c["h2d_copies"]
    assert device["cards_touched"] == [0] and c["cards_touched"] == [[0]]


@pytest.mark.strictdev
def test_sync_window_reads_no_loss_between_log_periods(tmp_path):
    iters = 4  # the trainer logs every 20 steps: only the last step of the run reads
    r, device = run_on_strict(
        "train", *TINY, "--data", "synthetic:4", "--batch", "1", "--warmup", "1",
        "--iters", str(iters), "--sync", "window", results=tmp_path,
    )  # fmt: skip
    c = r["conduct"]
    assert device["d2h"] == c["host_reads"] and harness_reads(c) == 1
    assert device["synchronize"] == 1  # the window's last step, nothing else
    assert r["final_loss"] is not None


@pytest.mark.strictdev
@pytest.mark.parametrize(
    "model, pooler_waits",
    [("faster_rcnn_R_18_FPN_quick", 4), ("mask_rcnn_R_18_FPN_quick", 8)],
)
def test_inference_reads_once_per_batch(tmp_path, model, pooler_waits):
    r, device = run_on_strict(
        "infer", "--model", model, *TINY[2:], "--data", "synthetic:4", "--batch", "2",
        "--warmup", "1", "--iters", "2", results=tmp_path,
    )  # fmt: skip
    c = r["conduct"]
    assert device["d2h"] == c["host_reads"]
    assert harness_reads(c) == 2  # two batches of two images, each brought back in one copy
    # and the model's own, a fixed number per batch whatever its images (the masks are pasted
    # on the paused clock, outside the window)
    assert per_iteration(c["model_reads_at"], 2) == READS_PER_BATCH
    assert c["host_reads"] + c["syncs"] == (1 + sum(READS_PER_BATCH.values())) * 2
    # the poolers wait once per FPN level (4) and head: the mask head's pooler too
    blocking = {**BLOCKING_PER_BATCH, "modeling/poolers.py": pooler_waits}
    assert per_iteration(c["model_sync_ops_at"], 2) == blocking
    # every blocking op the device saw, the harness saw too
    assert device["sync_ops"] == c["sync_ops"] == sum(blocking.values()) * 2


@pytest.mark.strictdev
@pytest.mark.slow
def test_each_rank_touches_its_own_card_and_the_launcher_none(tmp_path):
    """STRICTDEV_STRICT=1: the device raises when rank r touches another card or the
    launcher's parent touches any; the record says which cards each rank used."""
    r, _ = run_on_strict(
        "infer", *TINY, "--data", "synthetic:4", "--batch", "1", "--cards", "2",
        "--warmup", "1", "--iters", "1", results=tmp_path, strict="1",
    )  # fmt: skip
    assert r["cards"] == 2 and r["conduct"]["cards_touched"] == [[0], [1]]
    assert not any("touched cards" in b for b in r["conduct"]["budget_broken"])


def test_an_early_stop_under_sync_window_syncs_its_last_step_first(tmp_path, monkeypatch):
    """--sync window, target AP reached at the first evaluation (iteration 2 of 1 + 4): the
    window ends there, and its last step is synchronized before the evaluation starts, so the
    evaluation absorbs no queued work of the window and the window's wall time holds it all."""
    from benchmark.commands.infer import STATS
    from rcnn.device.cpu import CpuAdapter
    from rcnn.engine import run
    from rcnn.engine.trainer import Trainer

    events: list[str] = []
    sync = CpuAdapter.synchronize

    def synchronize(self, index=None):
        events.append("sync")
        return sync(self, index)

    def evaluate(session, model):
        events.append("evaluate")
        return {"bbox": {**dict.fromkeys(STATS, 0.0), "ap": 0.5}}

    step = Trainer.step

    def stepped(self, *args, **kwargs):
        losses = step(self, *args, **kwargs)
        events.append("step")
        return losses

    monkeypatch.setattr(CpuAdapter, "synchronize", synchronize)
    monkeypatch.setattr(Trainer, "step", stepped)
    monkeypatch.setattr(run, "evaluate", evaluate)
    logger = logging.getLogger("rcnn")  # the verb sets up this process's logger: give it back
    for name in ("handlers", "propagate", "level"):
        monkeypatch.setattr(logger, name, copy.copy(getattr(logger, name)))
    argv = ["train", *TINY[:2], "--device", "cpu", "--size", "64x64", "--data", "synthetic:4"]
    argv += ["--batch", "1", "--warmup", "1", "--iters", "4", "--sync", "window"]
    argv += ["--target-ap", "0.3", "--eval-period", "2", "--results", str(tmp_path)]
    events.clear()
    assert main(argv) == 0
    r = read_records([tmp_path])[0][-1]
    assert r["status"] == "ok" and r["measured_iters"] == 1  # stopped early, at iteration 2
    assert r["time_to_accuracy_s"] is not None
    # the window's start, the warm-up's end, and the last step synchronized before evaluating
    first_eval = events.index("evaluate")
    assert events[:first_eval] == ["sync", "step", "sync", "step", "sync"]
