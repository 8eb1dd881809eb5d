"""`python -m benchmark sweep`: a process per cell, unrunnable cells recorded as skipped.

A real sweep (a cell run as its own process beside a skipped one, then its tables) is part of
tests/benchmark/test_scripts.py::test_quickstart_smoke.
"""

from __future__ import annotations

import subprocess

import pytest
import torch

from benchmark.__main__ import main
from benchmark.commands import sweep
from benchmark.record import failed_record, read_records, write_run

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


def test_compile_and_channels_last_are_axes_and_an_uncompilable_device_skips(tmp_path, monkeypatch):
    from rcnn.compat import compile_unavailable_reason
    from rcnn.device.cpu import CpuAdapter

    class CpuWithoutCompiler(CpuAdapter):
        compile_backend = None  # as a backend whose plug-in registers no torch.compile backend

    monkeypatch.setattr(sweep, "resolve", lambda device: (CpuWithoutCompiler(), 0))
    argv = [*TINY, "--mode", "infer", "--precisions", "fp16", "--cards", "1", "--batches", "1"]
    code = main(
        ["sweep", *argv, "--compile", "off,on", "--channels-last", "off,on"]
        + ["--results", str(tmp_path)]
    )
    assert code == 0
    records, problems = read_records([tmp_path])
    assert problems == [] and len(records) == 4
    by_mode = {(r["compile"], r["channels_last"]): r for r in records}
    assert set(by_mode) == {(False, False), (False, True), (True, False), (True, True)}
    # fp16 is refused first; a runnable precision then meets the compile check
    assert "--batch 1 --compile --channels-last on --device cpu" in by_mode[(True, True)]["command"]
    assert "--channels-last off" in by_mode[(True, False)]["command"]
    cell = sweep.Cell("infer", "fp32", 1, 1, "r", compile=True)
    no_compile = compile_unavailable_reason()  # torch 2.1: no working nn.Module.compile
    assert sweep.skip_reason(cell, CpuWithoutCompiler(), None) == (
        f"torch.compile: {no_compile or 'no torch.compile backend for cpu: torch registers none'}"
    )
    assert sweep.skip_reason(cell, CpuAdapter(), None) == (
        None if no_compile is None else f"torch.compile: {no_compile}"
    )


@pytest.mark.parametrize(("capability", "trains_nhwc"), [("AVX2", False), ("AVX512", True)])
def test_the_layout_axis_defaults_to_the_adapters_fastest_layout_per_mode(
    tmp_path, monkeypatch, capability, trains_nhwc
):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    # fp16 on the CPU is refused, so every cell is a skipped record: no model runs
    argv = [*TINY, "--mode", "both", "--precisions", "fp16", "--cards", "1", "--batches", "1"]
    assert main(["sweep", *argv, "--results", str(tmp_path)]) == 0
    records, problems = read_records([tmp_path])
    layouts = {r["mode"]: (r["channels_last"], r["command"]) for r in records}
    assert problems == [] and set(layouts) == {"train", "infer"}
    assert layouts["infer"][0] is True and "--channels-last on" in layouts["infer"][1]
    train_flag = f"--channels-last {'on' if trains_nhwc else 'off'}"
    assert layouts["train"][0] is trains_nhwc and train_flag in layouts["train"][1]


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


def test_a_failed_cell_that_left_its_record_ends_in_a_report_and_exit_0(
    tmp_path, monkeypatch, capsys
):
    real_run = subprocess.run

    def cell_process(cmd, check=False, **kwargs):
        """The cell fails as a worker does: its failed record is written, then exit 1."""
        if "--run-id" not in cmd:  # git, nvidia-smi: not a sweep cell
            return real_run(cmd, check=check, **kwargs)
        run_id = cmd[cmd.index("--run-id") + 1]
        precision = cmd[cmd.index("--precision") + 1]
        error = RuntimeError(f"card lost in {precision}")
        fields = dict(run_id=run_id, mode="train", model=MODEL, device_type="cpu", cards=1)
        write_run(str(tmp_path), failed_record(error, precision=precision, **fields))
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(sweep.subprocess, "run", cell_process)
    args = ["sweep", *TINY, "--mode", "train", "--precisions", "fp32,bf16", "--cards", "1"]
    code = main([*args, "--results", str(tmp_path)])
    assert code == 0
    report = next((tmp_path / "sweeps").glob("*/REPORT.md")).read_text()
    assert "RuntimeError: card lost in fp32" in report
    assert "RuntimeError: card lost in bf16" in report
    assert [r["status"] for r in read_records([str(tmp_path)])[0]] == ["failed", "failed"]
