"""FLOPs per image, achieved TFLOP/s and utilisation: real counts on the quick R-18 config."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from benchmark import flops
from benchmark.__main__ import main
from benchmark.impls import model_config
from benchmark.record import read_records, validate
from benchmark.report import build_report
from rcnn.checkpoint import save_checkpoint
from rcnn.device.cuda import CudaAdapter
from rcnn.modeling.detector import build_detection_model

MODEL = "faster_rcnn_R_18_FPN_quick"
SIZE = (64, 96)


def _count(model, mode: str, results=None) -> tuple[float | None, str | None]:
    cfg = model_config(MODEL)
    return flops.gflops_per_image(
        model,
        cfg.DATALOADER.SIZE_DIVISIBILITY,
        cfg.MODEL.ROI_BOX_HEAD.NUM_CLASSES,
        SIZE,
        mode,
        "work",
        results,
    )


def test_a_count_is_positive_kept_and_training_counts_more(tmp_path, monkeypatch):
    monkeypatch.setattr(flops, "_CACHE", {})
    model = build_detection_model(model_config(MODEL))
    infer, why = _count(model, "infer", tmp_path)
    assert why is None and infer > 0
    kept = json.loads((tmp_path / "flops" / "work-64x96-infer.json").read_text())
    assert kept["gflops_per_image"] == infer
    # a fresh count of the same model agrees with the one the process and the disk keep
    impl = flops.RcnnImpl(model, model_config(MODEL).DATALOADER.SIZE_DIVISIBILITY)
    batch = flops.synthetic_batch(1, *SIZE, model_config(MODEL).MODEL.ROI_BOX_HEAD.NUM_CLASSES)
    assert flops.count_gflops(impl, batch, "infer") == pytest.approx(infer, rel=1e-9)
    assert _count(model, "infer", tmp_path) == (infer, None)
    monkeypatch.setattr(flops, "_CACHE", {})  # a new process reads the disk
    assert _count(None, "infer", tmp_path) == (infer, None)
    train, why = _count(model, "train")
    # backward costs about twice the forward on top of it
    assert why is None and train > 2 * infer
    assert not any(p.grad is not None for p in model.parameters())  # a copy was counted


def test_a_second_run_hits_the_cache_and_new_weights_in_the_same_file_miss_it(
    tmp_path, monkeypatch
):
    """Real keys: each run has its own OUTPUT_DIR (runs/<run_id>), which must not key the
    cache; a checkpoint rewritten in place with other weights must."""
    results = tmp_path / "results"
    ckpt = tmp_path / "weights.pth"
    model = build_detection_model(model_config(MODEL))
    save_checkpoint(ckpt, model)
    counted: list[tuple[int, int]] = []
    count = flops.count_gflops

    def spy(impl, batch, mode):
        counted.append(tuple(batch.images[0].shape[-2:]))
        return count(impl, batch, mode)

    monkeypatch.setattr(flops, "count_gflops", spy)
    tiny = ["--model", MODEL, "--device", "cpu", "--size", "64x96", "--data", "synthetic:2"]
    run = ["infer", *tiny, "--batch", "1", "--warmup", "0", "--ckpt", str(ckpt)]

    def infer() -> dict:
        monkeypatch.setattr(flops, "_CACHE", {})  # each run a new process: only the disk keeps
        assert main([*run, "--results", str(results)]) == 0
        records, problems = read_records([results])
        assert problems == []
        return records[-1]

    first = infer()
    assert counted and first["gflops_per_image"] > 0
    # counted at the measured batches' padded sizes, each batch's weight in the mean
    assert set(first["flop_sizes"]) == set(first["batch_shapes"]) == {"64x96"}
    assert sum(first["batch_shapes"].values()) == first["measured_iters"]
    kept = sorted(p.name for p in (results / "flops").iterdir())
    assert len(kept) == len(counted) == 1
    counted.clear()
    second = infer()
    assert second["run_id"] != first["run_id"] and second["workload_id"] == first["workload_id"]
    assert counted == [] and second["gflops_per_image"] == first["gflops_per_image"]
    assert sorted(p.name for p in (results / "flops").iterdir()) == kept
    torch.manual_seed(1)
    save_checkpoint(ckpt, build_detection_model(model_config(MODEL)))  # same name, new content
    third = infer()
    assert third["workload_id"] != first["workload_id"] and len(counted) == 1
    assert len(list((results / "flops").iterdir())) == 2


def test_a_failed_count_is_null_with_a_reason(monkeypatch):
    monkeypatch.setattr(flops, "_CACHE", {})
    value, why = _count(object(), "infer")
    assert value is None and why.startswith("FLOP count failed (")


def test_fields_follow_throughput_cards_and_peak():
    fields = flops.flop_fields(100.0, 30.0, 2, 19.5)
    assert fields["achieved_tflops"] == pytest.approx(3.0)
    assert fields["flop_utilisation"] == pytest.approx(3.0 / 39.0)
    assert flops.flop_fields(100.0, 30.0, 1, None)["flop_utilisation"] is None


@pytest.mark.parametrize(
    ("card", "peaks"),
    [
        ("NVIDIA A100-SXM4-80GB", (19.5, 156, 312, 312)),
        ("NVIDIA H100 80GB HBM3", (67, 494.7, 989.4, 989.4)),
        ("NVIDIA H200", (67, 494.7, 989.4, 989.4)),
        ("NVIDIA H100 PCIe", (None,) * 4),
        ("Tesla V100-SXM2-16GB", (None,) * 4),
        ("NVIDIA RTX A1000 6GB Laptop GPU", (None,) * 4),  # "A100" is in its name, not a word
        ("NVIDIA H200 NVL", (None,) * 4),
    ],
)
def test_a_known_card_gives_its_datasheet_peak(monkeypatch, card, peaks):
    adapter = CudaAdapter()
    monkeypatch.setattr(adapter, "card_name", lambda index: card)
    got = tuple(adapter.peak_tflops(0, p) for p in ("fp32", "tf32", "fp16", "bf16"))
    assert got == peaks


def test_records_carry_consistent_flop_fields_and_the_report_shows_them(tmp_path):
    results = tmp_path / "results"
    tiny = ["--model", MODEL, "--device", "cpu", "--size", "64x96", "--data", "synthetic:2"]
    common = [*tiny, "--batch", "1", "--warmup", "0", "--results", str(results)]
    assert main(["infer", *common, "--iters", "1", "--peak-tflops", "2.5"]) == 0
    assert main(["train", *common, "--iters", "1"]) == 0
    records, problems = read_records([results])
    assert problems == [] and len(records) == 2
    by_mode = {r["mode"]: r for r in records}
    for r in records:
        assert validate(r) == []
        assert r["gflops_per_image"] > 0
        expected = r["gflops_per_image"] * r["throughput_img_s"] / 1000
        assert r["achieved_tflops"] == pytest.approx(expected, rel=1e-9)
    assert by_mode["train"]["gflops_per_image"] > 2 * by_mode["infer"]["gflops_per_image"]
    infer = by_mode["infer"]
    assert infer["peak_tflops"] == 2.5
    assert infer["flop_utilisation"] == pytest.approx(infer["achieved_tflops"] / 2.5)
    train = by_mode["train"]
    assert train["peak_tflops"] is None and train["flop_utilisation"] is None
    assert any("peak is unknown" in n for n in train["notes"])
    text = build_report(records, tmp_path / "report", sources=[str(results)]).text
    assert "GFLOP/img" in text and "TFLOP/s" in text
    assert f"{infer['gflops_per_image']:.3g}" in text
    assert f"{100 * infer['flop_utilisation']:.2g}%" in text


def test_sweep_gives_each_cell_the_peak_of_its_precision():
    from benchmark.commands import sweep

    parser = argparse.ArgumentParser()
    sweep.add_parser(parser.add_subparsers())
    args = parser.parse_args(["sweep", "--model", MODEL, "--peak-tflops", "fp32=19.5,bf16=312"])
    assert args.peak_tflops == {"fp32": 19.5, "bf16": 312.0}
    argv = sweep.Cell("infer", "bf16", 1, 1, "r").argv(args)
    assert argv[argv.index("--peak-tflops") + 1] == "312.0"
    assert "--peak-tflops" not in sweep.Cell("infer", "fp16", 1, 1, "r").argv(args)
    with pytest.raises(argparse.ArgumentTypeError):
        sweep._peaks("fast")
