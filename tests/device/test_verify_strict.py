"""On the strict test device, as a user runs it: verify against the CPU, a refused precision,
and a run on a device that hides every optional capability (null fields and notes, a record)."""

import json

import pytest
from strict import bench

pytestmark = pytest.mark.strictdev
SMALL = ("--size", "64x96", "--data", "synthetic:2")


def last_record(results) -> dict:
    return json.loads((results / "records.jsonl").read_text().splitlines()[-1])


def test_verify_mask_rcnn_on_the_strict_device_agrees_with_the_cpu(tmp_path):
    model = ("--model", "mask_rcnn_R_18_FPN_quick")
    done = bench("verify", "--device", "strict", *model, *SMALL, results=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    r = last_record(tmp_path)
    assert (r["mode"], r["status"], r["device_type"]) == ("verify", "ok", "strict")
    a = r["agreement"]
    assert a["detections_cpu"] == a["detections_device"] > 0
    assert a["box_match"] == a["label_agreement"] == a["mask_iou"] == 1.0
    assert a["box_iou"] > 0.9999 and a["score_diff"] < 1e-5  # CPU math under the device
    assert a["loss_diff"] < 1e-5 and a["loss_after_step_diff"] < 1e-4
    assert r["agreement_limits"]["box_match"] == 0.95 and r["compute_dtype"] == "float32"
    assert "vs cpu fp32: ok: box_match 1" in done.stdout


def test_a_precision_autocast_cannot_give_is_refused_before_work(tmp_path):
    model = ("--model", "faster_rcnn_R_18_FPN_quick", "--precision", "bf16")
    done = bench("verify", "--device", "strict", *model, *SMALL, results=tmp_path, autocast="off")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: precision 'bf16' is not supported on strict (a convolution")
    r = last_record(tmp_path)
    assert r["status"] == "failed" and "not supported on strict" in r["error"]


def test_a_device_without_optional_capabilities_still_records_the_run(tmp_path):
    run = ("infer", "--device", "strict", "--model", "faster_rcnn_R_18_FPN_quick")
    hide = "name,properties,memory,bf16,rng"
    done = bench(
        *run,
        *SMALL,
        "--iters",
        "1",
        "--warmup",
        "0",
        results=tmp_path,
        hide=hide,
        accelerator="sync",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    r = last_record(tmp_path)
    assert r["status"] == "ok" and r["throughput_img_s"] > 0
    assert r["device_name"] is None and r["peak_mem_mb"] is None
    assert r["compute_dtype"] == "float32"
    for missing in ("card name", "memory statistics"):
        assert any(f"strict: no {missing}" in note for note in r["notes"]), r["notes"]
