"""Run code or the harness with the strict test device (tests/strictdev) in a fresh process.

The device renames PrivateUse1 for the life of a process, so it never loads into pytest's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
NEEDS_ACCELERATOR = pytest.mark.skipif(
    not hasattr(torch, "accelerator"), reason="torch.accelerator arrived in torch 2.6"
)


def strict_env(**flags: str) -> dict[str, str]:
    """The environment a user sets to run on the strict device, plus STRICTDEV_* flags."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRICTDEV_")}
    for key in ("RESULTS_DIR", "LOCAL_RANK", "WORLD_SIZE", "RANK"):
        env.pop(key, None)
    path = [str(ROOT / "tests"), env.get("PYTHONPATH", "")]
    env.update(PYTHONPATH=os.pathsep.join(p for p in path if p), RCNN_DEVICE_PLUGIN="strictdev")
    env.update({f"STRICTDEV_{k.upper()}": v for k, v in flags.items()})
    return env


def run_python(*code: str, **flags: str) -> dict:
    """Run the code blocks after `import strictdev`; they print one JSON line last, returned."""
    script = "\n".join(["import json, torch, strictdev", *map(textwrap.dedent, code)])
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=strict_env(**flags),
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(
    *args: str, results: Path, timeout: int = 600, **flags: str
) -> subprocess.CompletedProcess:
    """`python -m benchmark ARGS --results RESULTS` on the strict device, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args, "--results", str(results)],
        capture_output=True,
        text=True,
        env=strict_env(**flags),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
