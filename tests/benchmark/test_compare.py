"""`python -m benchmark compare`: our detector and torchvision's on the same inputs, for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from benchmark import impls
from benchmark.__main__ import main
from benchmark.record import read_records, validate
from benchmark.report import build_report

MODEL = "e2e_faster_rcnn_R_50_FPN_1x"  # a body torchvision has a peer for
MASK = "e2e_mask_rcnn_R_50_FPN_1x"
SMALL = ["--model", MODEL, "--size", "64x96", "--iters", "2", "--warmup", "0", "--threads", "1"]


def test_compare_runs_both_impls_on_the_same_inputs(capsys, tmp_path, monkeypatch):
    """Same pixels into both backbones, the same work: no resize, normalise or paste in the
    peer's timed forward, both return 100 detections with 28x28 mask probabilities."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    stem_inputs: list[torch.Tensor] = []

    def stem_input(module, inputs):
        if isinstance(module, torch.nn.Conv2d) and module.in_channels == 3:
            stem_inputs.append(inputs[0].detach().clone())

    peer_steps = {"normalize": 0, "resize": 0, "postprocess": 0}
    for name in peer_steps:
        original = getattr(GeneralizedRCNNTransform, name)

        def counted(self, *a, _name=name, _original=original, **k):
            peer_steps[_name] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(GeneralizedRCNNTransform, name, counted)
    outputs: dict[str, list] = {"rcnn": [], "torchvision": []}
    for cls in (impls.RcnnImpl, impls.TorchvisionImpl):

        def kept(self, batch, _original=cls.infer):
            result = _original(self, batch)
            outputs[self.name].append(result[0])
            return result

        monkeypatch.setattr(cls, "infer", kept)

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    handle = torch.nn.modules.module.register_module_forward_pre_hook(stem_input)
    try:
        argv = ["compare", *SMALL, "--model", MASK, "--json", "--results", str(tmp_path)]
        assert main(argv) == 0
        # --threads 1 held for the run only: every test after this one got 1 thread before
        assert torch.get_num_threads() == 2
    finally:
        handle.remove()
        torch.set_num_threads(threads)
    out = json.loads(capsys.readouterr().out)
    setup = f"{MASK} infer batch 1 64x96 fp32 cpu, ours eager, 1 threads, 1 x 2 iters"
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

    # the same inputs: the synthetic batch's pixels, as they are, into both stems (A, B, A, B;
    # the FLOP count after the window runs each impl once more on the same batch)
    pixels = impls.synthetic_batch(1, 64, 96, 81).images[0]
    assert len(stem_inputs) >= 4
    for seen in stem_inputs:
        assert seen.shape == (1, 3, 64, 96)
        assert torch.equal(seen[0], pixels)
    # the same work: nothing of the peer's transform but batching, detections alike
    assert peer_steps == {"normalize": 0, "resize": 0, "postprocess": 0}
    assert len(outputs["rcnn"]) == len(outputs["torchvision"]) >= 2
    for ours, peer in zip(outputs["rcnn"], outputs["torchvision"], strict=True):
        assert len(ours) == len(peer["boxes"]) == 100  # DETECTIONS_PER_IMG at threshold 0
        assert ours.get_field("mask").shape == peer["masks"].shape == (100, 1, 28, 28)
    records, _ = read_records([tmp_path])
    assert sorted(r["impl"] for r in records) == ["rcnn", "torchvision"]
    assert {r["work"] for r in records} == {impls.WORK["infer"]}


def test_a_config_without_a_torchvision_peer_is_one_line_exit_2(capsys, tmp_path):
    argv = ["compare", "--model", "faster_rcnn_R_18_FPN_quick", "--size", "64x96", "--iters", "1"]
    assert main([*argv, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no torchvision peer for ('R-18-FPN'") and err.count("\n") == 1
    # a run that stops before work still leaves its records, as train's and infer's do
    for r in _records_by_impl(tmp_path).values():
        assert r["status"] == "failed" and r["error"].startswith("UsageError: no torchvision peer")


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
    # the same work, so one workload in the report: the rows differ by impl alone
    assert by_impl["rcnn"]["workload_id"] == by_impl["torchvision"]["workload_id"]
    assert by_impl["rcnn"]["workload"]["data"] == "compare-synthetic"
    text = build_report(records, tmp_path / "report", sources=[str(tmp_path)]).text
    rows = [line for line in text.splitlines() if line.startswith(f"| {MODEL} |")]
    assert sorted(line.split(" | ")[1] for line in rows) == ["rcnn", "torchvision"]


@pytest.mark.parametrize(("sync", "loss_reads"), [("iteration", 2), ("window", 1)])
def test_each_record_counts_its_own_impls_conduct(capsys, tmp_path, sync, loss_reads):
    """Two timed runs at once: each counts its impl's host reads, the model's told from the
    harness's (the trainer's read of its losses: every step, or with --sync window the last
    one only), and torch's methods are restored after."""
    methods = {name: getattr(torch.Tensor, name) for name in ("item", "tolist", "cpu", "to")}
    argv = ["compare", *SMALL, "--warmup", "1", "--mode", "train", "--sync", sync, "--json"]
    assert main([*argv, "--results", str(tmp_path)]) == 0
    assert {name: getattr(torch.Tensor, name) for name in methods} == methods
    by_impl = _records_by_impl(tmp_path)
    ours, peer = by_impl["rcnn"]["conduct"], by_impl["torchvision"]["conduct"]
    assert ours["iterations"] == peer["iterations"] == 2
    assert ours["model_host_reads"] > 0
    assert ours["host_reads"] - ours["model_host_reads"] == loss_reads
    assert peer["model_host_reads"] == 0  # torchvision's code is not our model's


def test_compare_takes_the_run_options_and_overrides_for_both_impls(capsys, tmp_path, monkeypatch):
    """train's and infer's parser: KEY VALUE overrides build both impls, --peak-tflops fills
    the utilisation, and what compare cannot do is refused in one line before work."""
    detections: dict[str, list[int]] = {"rcnn": [], "torchvision": []}
    for cls in (impls.RcnnImpl, impls.TorchvisionImpl):

        def kept(self, batch, _original=cls.infer):
            result = _original(self, batch)
            count = len(result[0]) if self.name == "rcnn" else len(result[0]["boxes"])
            detections[self.name].append(count)
            return result

        monkeypatch.setattr(cls, "infer", kept)
    argv = ["compare", *SMALL, "--peak-tflops", "2", "--results", str(tmp_path)]
    assert main([*argv, "MODEL.ROI_HEADS.DETECTIONS_PER_IMG", "7"]) == 0
    assert set(detections["rcnn"]) == set(detections["torchvision"]) == {7}
    for r in _records_by_impl(tmp_path).values():
        assert r["peak_tflops"] == 2
        assert r["flop_utilisation"] == pytest.approx(r["achieved_tflops"] / 2)
    capsys.readouterr()
    for flag, value, says in [
        ("--cards", "2", "compare runs on one card"),
        ("--data", "coco", "compare feeds both impls one synthetic batch"),
        ("--ckpt", "x.pth", "compare starts both impls from the same random weights"),
    ]:
        assert main([*argv, flag, value]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {says}") and err.count("\n") == 1


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
    batch = impls.synthetic_batch(1, 64, 96, 81)
    calibration = torch.stack(batch.images)
    built = {
        layout: impls.build_impls(
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
    # compare keeps every detection up to DETECTIONS_PER_IMG, so there are boxes to compare
    assert len(plain["boxes"]) == len(last["boxes"]) == 100
    assert torch.equal(last["labels"], plain["labels"])
    torch.testing.assert_close(last["scores"], plain["scores"], atol=1e-4, rtol=0)
    # boxes in pixels of a 96 x 64 image: the layouts sum in different orders
    torch.testing.assert_close(last["boxes"], plain["boxes"], atol=0.05, rtol=0)


def _records_by_impl(results) -> dict[str, dict]:
    records, problems = read_records([results])
    assert problems == []
    by_impl = {r["impl"]: r for r in records}
    assert len(by_impl) == len(records) == 2
    return by_impl


def test_a_compare_killed_mid_run_leaves_a_record_per_impl(tmp_path):
    """SIGTERM while both impls are being timed: exit 130, one line, and each impl's record
    says it was interrupted, with the work it was doing."""
    argv = ["compare", *SMALL, "--iters", "100000", "--results", str(tmp_path)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmark", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        for line in proc.stdout:
            if "timing rcnn and torchvision" in line:
                break
        time.sleep(1.0)  # iterations under way
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "error: interrupted (SIGTERM)"
    for r in _records_by_impl(tmp_path).values():
        assert validate(r) == []
        assert (r["status"], r["mode"], r["model"], r["device_type"]) == (
            "interrupted",
            "infer",
            MODEL,
            "cpu",
        )
        assert "SIGTERM" in r["error"] and r["work"] == impls.WORK["infer"]
        assert (tmp_path / "runs" / r["run_id"] / "log.txt").is_file()


def test_a_compare_that_crashes_leaves_a_failed_record_per_impl(capsys, tmp_path, monkeypatch):
    def broken(self, batch):
        raise RuntimeError("the peer broke")

    monkeypatch.setattr(impls.TorchvisionImpl, "infer", broken)
    item = torch.Tensor.item
    assert main(["compare", *SMALL, "--results", str(tmp_path)]) == 1
    assert torch.Tensor.item is item  # the conduct counters' patches are gone
    err = capsys.readouterr().err
    assert err.startswith("error: unexpected error: RuntimeError: the peer broke") and (
        err.count("\n") == 1
    )
    for r in _records_by_impl(tmp_path).values():
        assert (r["status"], r["error"]) == ("failed", "RuntimeError: the peer broke")


def test_compare_trains_with_the_trainers_step_which_stops_on_a_nan_loss(
    capsys, tmp_path, monkeypatch
):
    """The trainer's step reads the losses once and stops before updating on a NaN: so does
    compare's, for either impl."""
    losses = impls.TorchvisionImpl.losses

    def nan_loss(self, batch):
        result = losses(self, batch)
        result["loss_classifier"] = result["loss_classifier"] * float("nan")
        return result

    monkeypatch.setattr(impls.TorchvisionImpl, "losses", nan_loss)
    argv = ["compare", *SMALL, "--mode", "train", "--results", str(tmp_path)]
    assert main(argv) == 3
    assert "non-finite loss at iteration 1: " in capsys.readouterr().err
    for r in _records_by_impl(tmp_path).values():
        assert (r["status"], r["mode"], r["work"]) == ("nan", "train", impls.WORK["train"])


@pytest.mark.parametrize("flag", ["--repeats", "--iters"])
def test_counts_below_one_are_one_line(capsys, tmp_path, flag):
    assert main(["compare", *SMALL, flag, "0", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {flag} must be >= 1, got 0\n"


def test_mask_rcnn_trains_both_impls_on_the_same_masks(capsys, tmp_path):
    """The batch carries the rectangles as binary masks: each impl's mask head gets its
    targets (torchvision's refuses targets without masks) from the same pixels."""
    batch = impls.synthetic_batch(1, 64, 96, 81, masks=True)
    (masks,), (boxes,) = batch.masks, batch.boxes
    assert masks.shape == (8, 64, 96) and masks.dtype == torch.uint8
    x1, y1, x2, y2 = boxes[0].round().int().tolist()
    assert masks[0].sum() == (x2 - x1) * (y2 - y1) and masks[0, y1:y2, x1:x2].all()
    argv = ["compare", *SMALL[2:], "--model", MASK, "--mode", "train", "--iters", "1", "--json"]
    assert main([*argv, "--results", str(tmp_path)]) == 0, capsys.readouterr().err
    records, _ = read_records([tmp_path])
    assert sorted((r["impl"], r["status"]) for r in records) == [
        ("rcnn", "ok"),
        ("torchvision", "ok"),
    ]
