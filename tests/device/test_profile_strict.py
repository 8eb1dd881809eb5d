"""`benchmark profile` on the strict test device, as a user runs it: the adapter's profiler
activities (the host and the plug-in's PrivateUse1), a category table and the trace."""

import json

import pytest
from strict import bench

pytestmark = pytest.mark.strictdev


def test_profile_runs_on_the_strict_device(tmp_path):
    run = ("profile", "--device", "strict", "--model", "faster_rcnn_R_18_FPN_quick")
    small = ("--size", "64x96", "--data", "synthetic:2", "--iters", "2", "--warmup", "1")
    done = bench(*run, *small, results=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads((tmp_path / "records.jsonl").read_text().splitlines()[-1])
    assert (r["mode"], r["status"], r["device_type"]) == ("profile", "ok", "strict")
    p = r["profile"]
    # a Python-only device has no kernel timeline: its ops are timed on the host, and said so
    assert p["activities"][0] == "CPU" and len(p["activities"]) == 2 and p["op_times"] == "host"
    ms = {c["name"]: c["ms"] for c in p["categories"]}
    assert ms["conv fwd"] > 0 and ms["conv bwd"] > 0 and ms["optimizer"] > 0
    assert sum(c["share"] for c in p["categories"]) == pytest.approx(1.0, abs=1e-6)
    assert (tmp_path / "runs" / r["run_id"] / "trace.json").stat().st_size > 0
    assert "op times: the host's (CPU, " in done.stdout
