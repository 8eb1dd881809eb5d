"""`python -m benchmark overhead` as a user runs it: a real process, its printed numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_overhead_prints_the_loops_time_and_its_share_of_a_step(tmp_path):
    argv = ["--device", "cpu", "--size", "64x64", "--iters", "20", "--steps", "1", "--warmup", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", "overhead", *argv],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
        env={**os.environ, "RESULTS_DIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    numbers = {
        name: float(value)
        for name, value in re.findall(r"(null model|the model|a step): +([0-9.]+)", done.stdout)
    }
    loop, step, share = numbers["null model"], numbers["the model"], numbers["a step"]
    assert "faster_rcnn_R_18_FPN_quick at 64x64 (batches 64x64), batch 2, cpu" in done.stdout
    # the loop costs something, far less than a real step, and the share is their ratio
    assert 0 < loop < step and 0 < share < 100
    assert abs(share - 100 * loop / step) < 0.01 + 1e-3 * share
    assert list(tmp_path.iterdir()) == []  # it writes no record into the results
