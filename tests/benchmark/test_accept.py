"""benchmark/accept.sh as a user runs it: refused on a host without an accelerator, and its tiny
CPU version (--allow-cpu) through every step, each writing what it should."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_scripts import ROOT, run_script

from benchmark.record import read_records


def test_without_an_accelerator_it_says_so_and_exits_1(tmp_path):
    results = tmp_path / "results"
    done = run_script(
        "accept.sh", "--device", "cpu", results=results, RCNN_BENCH_PYTHON=sys.executable
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: no accelerator here (--device cpu resolves to the CPU); accept.sh measures a "
        "card. --allow-cpu runs a tiny CPU version of its steps instead"
    ]
    assert not (results / "accept").exists()


@pytest.mark.slow
def test_allow_cpu_runs_every_step_tiny(tmp_path):
    results = tmp_path / "results"
    env = {**os.environ, "RESULTS_DIR": str(results), "RCNN_BENCH_PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmark" / "accept.sh"), "--device", "cpu", "--allow-cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,  # about 20 processes; minutes on a host other work shares
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ops: left out of the CPU version" in done.stdout  # timed on a card only
    records, problems = read_records([results / "accept"])
    assert problems == []
    verify = sorted(
        (r["model"], r["precision"], r["status"]) for r in records if r["mode"] == "verify"
    )
    assert verify == [
        ("faster_rcnn_R_18_FPN_quick", "fp32", "ok"),
        ("mask_rcnn_R_18_FPN_quick", "fp32", "ok"),
    ]
    swept = {(r["mode"], r["precision"], r["status"], r.get("compute_dtype")) for r in records}
    for mode in ("train", "infer"):
        assert {(mode, "fp32", "ok", "float32"), (mode, "bf16", "ok", "bfloat16")} <= swept
        assert {(mode, p, "skipped", None) for p in ("tf32", "fp16")} <= swept
    report = (results / "accept" / "REPORT.md").read_text()
    assert "## Device vs CPU (verify)" in report and "| mask_rcnn_R_18_FPN_quick |" in report
