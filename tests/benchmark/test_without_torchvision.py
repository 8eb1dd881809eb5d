"""The harness where torchvision is absent, as in vendor images that ship none.

Real `python -m benchmark` processes; torchvision is made absent by a package of that name that
fails to import, first on the path (CI's no-torchvision lane also runs train/infer in a venv that
truly lacks it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench_without_torchvision(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    shim = tmp_path / "shim" / "torchvision"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named torchvision')\n")
    path = os.pathsep.join([str(shim.parent), str(ROOT / "models"), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": path},
        timeout=300,
        check=False,
    )


def test_devices_lists_the_cpu_with_native_ops(tmp_path):
    out = bench_without_torchvision(tmp_path, "devices", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["versions"]["torchvision"] is None
    (cpu,) = [b for b in report["backends"] if b["backend"] == "cpu"]
    assert cpu["available"] is True and len(cpu["cards"]) == 1
    assert cpu["ops"] == {"nms": "native", "roi_align": "native", "roi_pool": "native"}


def test_compare_says_it_needs_torchvision(tmp_path):
    out = bench_without_torchvision(
        tmp_path, "compare", "--model", "faster_rcnn_R_18_FPN_quick", "--impl", "torchvision",
        "--size", "64x96", "--iters", "1", "--warmup", "0",
    )  # fmt: skip
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: compare needs torchvision") and "No module named" in line
