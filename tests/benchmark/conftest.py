"""Shared by the benchmark tests that start real runs and kill or signal their workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(args: list[str], results: Path, **popen) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RESULTS_DIR"}
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark", *args, "--results", str(results)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**env, "OMP_NUM_THREADS": "1"},
        start_new_session=True,  # its own process group: the test can kill torchrun's workers
        **popen,
    )


@pytest.fixture
def bench() -> Callable[..., subprocess.Popen]:
    """`bench(args, results, **popen)`: `python -m benchmark ARGS --results RESULTS` started."""
    return _bench


def _worker_pid(results: Path, rank: int) -> int | None:
    """The pid of the torchrun worker of `rank` in the run writing to `results`."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = str(results).encode() in cmdline and b"--worker" in cmdline
        if ours and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    return None


@pytest.fixture
def worker_pid() -> Callable[[Path, int], int | None]:
    """`worker_pid(results, rank)`: the pid of that worker of the run, or None."""
    return _worker_pid
