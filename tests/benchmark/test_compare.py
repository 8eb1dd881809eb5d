"""`python -m benchmark compare`: our detector and torchvision's on the same inputs, for real."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.__main__ import main
from benchmark.record import read_records, validate
from benchmark.report import build_report

MODEL = "e2e_faster_rcnn_R_50_FPN_1x"  # a body torchvision has a peer for
SMALL = ["--model", MODEL, "--size", "64x96", "--iters", "2", "--warmup", "0", "--threads", "1"]


def test_compare_runs_both_impls_on_the_same_inputs(capsys, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(["compare", *SMALL, "--json", "--results", str(tmp_path)]) == 0
        # --threads 1 held for the run only: every test after this one got 1 thread before
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    out = json.loads(capsys.readouterr().out)
    setup = f"{MODEL} infer batch 1 64x96 fp32 cpu, ours eager, 1 threads, 1 x 2 iters"
    assert out["setup"].startswith(setup)
    results = out["results"]
    assert list(results) == ["rcnn", "torchvision"]
    for r in results.values():
        assert r["images_per_s"] > 0
        p50 = r["step_time_ms"]["p50"]
        # 2 iterations of 1 image: images/s is 1000 / the mean step in ms
        assert r["images_per_s"] == pytest.approx(1000 / r["step_time_ms"]["mean"], rel=1e-6)
        assert 0 < p50 <= r["step_time_ms"]["p99"]
    ratio = results["rcnn"]["images_per_s"] / results["torchvision"]["images_per_s"]
    assert out["ratio_rcnn_over_torchvision"]["median"] == pytest.approx(ratio)


def test_a_config_without_a_torchvision_peer_is_one_line_exit_2(capsys):
    argv = ["compare", "--model", "faster_rcnn_R_18_FPN_quick", "--size", "64x96", "--iters", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no torchvision peer for ('R-18-FPN'") and err.count("\n") == 1


def test_size_is_min_by_max(capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--size", "96x64"])
    assert info.value.code == 2
    assert "size needs 32 <= MIN <= MAX, got '96x64'" in capsys.readouterr().err


def test_compare_writes_one_record_per_impl_that_the_report_keeps_apart(capsys, tmp_path):
    argv = ["compare", *SMALL, "--device", "cpu", "--mode", "train", "--json"]
    assert main([*argv, "--results", str(tmp_path)]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    records, problems = read_records([tmp_path])
    assert problems == [] and len(records) == 2
    by_impl = {r["impl"]: r for r in records}
    assert set(by_impl) == {"rcnn", "torchvision"}
    for name, r in by_impl.items():
        assert validate(r) == []
        assert (r["mode"], r["device_type"], r["precision"], r["model"]) == (
            "train",
            "cpu",
            "fp32",
            MODEL,
        )
        assert (r["image_min_size"], r["image_max_size"], r["measured_iters"]) == (64, 96, 2)
        assert r["run_id"] == results[name]["run_id"]
        assert r["throughput_img_s"] == results[name]["images_per_s"]
        # the timer's own numbers: 2 back-to-back steps of one image each
        assert r["throughput_img_s"] == pytest.approx(1000 / r["step_time_ms"]["mean"], rel=1e-6)
        assert r["gflops_per_image"] > 0
        expected = r["gflops_per_image"] * r["throughput_img_s"] / 1000
        assert r["achieved_tflops"] == pytest.approx(expected)
    text = build_report(records, tmp_path / "report", sources=[str(tmp_path)]).text
    rows = [line for line in text.splitlines() if line.startswith(f"| {MODEL} |")]
    assert sorted(line.split(" | ")[1] for line in rows) == ["rcnn", "torchvision"]


def test_compare_runs_in_bf16_on_cpu(capsys, tmp_path):
    argv = ["compare", *SMALL, "--impl", "torchvision", "--precision", "bf16", "--json"]
    assert main([*argv, "--results", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert " bf16 " in out["setup"]
    (record,), _ = read_records([tmp_path])
    assert (record["impl"], record["precision"], record["status"]) == ("torchvision", "bf16", "ok")


def test_repeats_give_a_median_ratio_and_every_window_in_the_record(capsys, tmp_path):
    argv = ["compare", *SMALL, "--repeats", "3", "--channels-last", "--json"]
    assert main([*argv, "--results", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "ours channels-last, " in out["setup"] and "3 x 2 iters" in out["setup"]
    results = out["results"]
    ours, peer = (results[n]["repeats_images_per_s"] for n in ("rcnn", "torchvision"))
    assert len(ours) == len(peer) == 3
    ratios = sorted(a / b for a, b in zip(ours, peer, strict=True))
    ratio = out["ratio_rcnn_over_torchvision"]
    assert ratio["median"] == pytest.approx(ratios[1])
    assert (ratio["min"], ratio["max"]) == pytest.approx((ratios[0], ratios[2]))
    records, _ = read_records([tmp_path])
    by_impl = {r["impl"]: r for r in records}
    assert (by_impl["rcnn"]["channels_last"], by_impl["torchvision"]["channels_last"]) == (
        True,
        False,
    )
    assert by_impl["rcnn"]["compile"] is False
    # the CPU adapter runs roi_align natively (measured faster); nms stays on the kernel
    assert by_impl["rcnn"]["ops"] == {"nms": "kernel", "roi_align": "native"}
    assert by_impl["torchvision"]["ops"] is None
    for name, r in by_impl.items():
        assert (r["repeats"], r["measured_iters"]) == (3, 6)
        assert r["throughput_img_s"] == pytest.approx(
            sorted(results[name]["repeats_images_per_s"])[1]
        )
        spread = r["throughput_spread"]
        assert (spread["min"], spread["max"]) == pytest.approx(
            (min(results[name]["repeats_images_per_s"]), max(results[name]["repeats_images_per_s"]))
        )


def test_the_peer_can_run_channels_last_and_gives_the_same_detections():
    from benchmark.impls import build_impls, synthetic_batch

    batch = synthetic_batch(1, 64, 96, 81)
    calibration = torch.stack(batch.images)
    built = {
        layout: build_impls(
            MODEL, ["torchvision"], (64, 96), calibration, peer_channels_last=layout
        )[0]
        for layout in (False, True)
    }
    assert built[True].channels_last and not built[False].channels_last
    conv = built[True].model.backbone.body.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    for impl in built.values():
        impl.model.eval()
    with torch.inference_mode():
        plain, last = (built[k].infer(batch)[0] for k in (False, True))
    torch.testing.assert_close(last["boxes"], plain["boxes"], atol=1e-3, rtol=0)


@pytest.mark.parametrize("flag", ["--repeats", "--iters"])
def test_counts_below_one_are_one_line(capsys, flag):
    assert main(["compare", *SMALL, flag, "0"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {flag} must be >= 1, got 0\n"
