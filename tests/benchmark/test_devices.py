"""`python -m benchmark devices`: every backend, run for real in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch


def devices(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RCNN_DEVICE_PLUGIN"}
    return subprocess.run(
        [sys.executable, "-m", "benchmark", "devices", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_devices_json_describes_this_cpu_and_the_absent_backends():
    proc = devices("--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["versions"]["torch"] == torch.__version__
    rows = {r["backend"]: r for r in out["backends"]}
    assert {"cpu", "cuda", "mlu", "npu", "xpu", "mps"} <= set(rows)
    cpu = rows["cpu"]
    assert cpu["available"] is True and cpu["why_not"] is None
    assert cpu["dist_backend"] == "gloo"
    assert len(cpu["cards"]) == 1 and cpu["cards"][0]["index"] == 0
    assert f"({os.cpu_count()} cores)" in cpu["cards"][0]["name"]
    assert cpu["precisions"][0] == "fp32" and "bf16" in cpu["precisions"]
    assert set(cpu["ops"]) == {"nms", "roi_align", "roi_pool"}
    assert set(cpu["ops"].values()) <= {"kernel", "native"}
    mlu = rows["mlu"]
    assert mlu["available"] is False and mlu["plugin"] == "torch_mlu"
    assert mlu["why_not"] == "torch_mlu is not installed" and mlu["cards"] == []
    assert mlu["visible_devices_env"] == "MLU_VISIBLE_DEVICES" and mlu["dist_backend"] == "cncl"


def test_devices_table_without_preflight():
    proc = devices("--no-preflight")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"torch {torch.__version__}, torchvision ")
    header = next(i for i, line in enumerate(lines) if line.startswith("backend"))
    assert lines[header].split() == ["backend", "status", "cards", "precisions", "dist", "ops"] + [
        "(kernel|native)"
    ]
    cpu = next(line for line in lines[header + 2 :] if line.startswith("cpu "))
    assert "available" in cpu and "gloo" in cpu and cpu.rstrip().endswith("-")  # no ops run
