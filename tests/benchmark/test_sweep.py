"""`python -m benchmark sweep`: a process per cell, unrunnable cells recorded as skipped.

A real sweep (a cell run as its own process beside a skipped one, then its tables) is part of
tests/benchmark/test_scripts.py::test_quickstart_smoke.
"""

from __future__ import annotations

import subprocess

from benchmark.__main__ import main
from benchmark.commands import sweep
from benchmark.record import read_records

MODEL = "faster_rcnn_R_18_FPN_quick"
TINY = [
    "--model",
    MODEL,
    "--device",
    "cpu",
    "--size",
    "64x96",
    "--data",
    "synthetic:4",
    "--iters",
    "1",
    "--warmup",
    "1",
]


def test_cells_this_machine_cannot_run_are_recorded_as_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    code = main(
        [
            "sweep",
            *TINY,
            "--mode",
            "both",
            "--precisions",
            "tf32,fp16",
            "--cards",
            "1,64",
            "--batches",
            "1,2",
            "--results",
            str(tmp_path),
        ]
    )
    assert code == 0
    records, problems = read_records([tmp_path])
    assert problems == []
    # train: 2 precisions x 2 card counts; infer: x 2 batch sizes as well
    assert len(records) == 4 + 8
    assert {r["status"] for r in records} == {"skipped"}
    by_cell = {(r["mode"], r["precision"], r["cards"], r["batch_per_card"]): r for r in records}
    tf32 = by_cell[("infer", "tf32", 1, 2)]
    assert (
        tf32["error"] == "precision 'tf32' is not supported on cpu; this device supports fp32, bf16"
    )
    assert tf32["global_batch"] == 2 and tf32["model"] == MODEL
    assert tf32["command"].startswith(f"python -m benchmark infer --model {MODEL} --precision tf32")
    out = capsys.readouterr().out
    assert "skipped: precision 'tf32' is not supported on cpu" in out
    assert (tmp_path / "sweeps").is_dir()


def test_more_cards_than_cores_is_a_skip_reason(monkeypatch):
    from rcnn.device import get_adapter

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    cpu = get_adapter("cpu")
    assert sweep.skip_reason(sweep.Cell("train", "fp32", 2, 2, "r"), cpu, None) is None
    assert sweep.skip_reason(sweep.Cell("train", "fp32", 64, 2, "r"), cpu, None) == (
        "64 cards asked; this machine has 2 cpu cores (one process per core)"
    )
    absent = "device 'mlu' requested but torch_mlu is not installed"
    assert sweep.skip_reason(sweep.Cell("infer", "fp32", 1, 1, "r"), None, absent) == absent


def test_a_failing_cell_does_not_stop_the_sweep(tmp_path, monkeypatch, capsys):
    ran = []

    def fake_run(cmd, check):
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 1 if len(ran) == 1 else 0)

    monkeypatch.setattr(sweep.subprocess, "run", fake_run)
    code = main(
        [
            "sweep",
            *TINY,
            "--mode",
            "train",
            "--precisions",
            "fp32,bf16",
            "--cards",
            "1",
            "--results",
            str(tmp_path),
        ]
    )
    assert len(ran) == 2  # the bf16 cell ran after the fp32 cell failed
    assert [c[c.index("--precision") + 1] for c in ran] == ["fp32", "bf16"]
    assert code == 1
    assert "exit 1" in capsys.readouterr().out
