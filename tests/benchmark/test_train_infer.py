"""`python -m benchmark train` / `infer` as a user runs them: real processes, real records.

Tiny on purpose: the quick R-18 config at 64x96 on a 4-image synthetic set, 1-2 iterations.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmark.__main__ import main
from benchmark.commands.infer import STATS
from benchmark.impls import model_config
from benchmark.record import read_records, validate
from rcnn.modeling.detector import build_detection_model

ROOT = Path(__file__).resolve().parents[2]
MODEL = "faster_rcnn_R_18_FPN_quick"
TINY = ["--model", MODEL, "--device", "cpu", "--size", "64x96", "--data", "synthetic:4"]


def bench(*args: str, results: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RESULTS_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args, "--results", str(results)],
        capture_output=True,
        text=True,
        cwd=results.parent,
        env=env,
        timeout=600,
        check=False,
    )


def only_record(results: Path) -> dict:
    records, problems = read_records([results])
    assert problems == []
    assert len(records) == 1, [r["status"] for r in records]
    assert validate(records[0]) == []
    run_dir = results / "runs" / records[0]["run_id"]
    assert json.loads((run_dir / "record.json").read_text()) == records[0]
    return records[0]


def test_train_writes_a_measured_record(tmp_path):
    results = tmp_path / "results"
    # an AP target this run cannot reach: it evaluates at iteration 2 and trains on
    done = bench(
        "train", *TINY, "--batch", "1", "--iters", "2", "--warmup", "1",
        "--target-ap", "0.99", "--eval-period", "2", results=results,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    r = only_record(results)
    assert (r["status"], r["mode"], r["model"], r["device_type"]) == ("ok", "train", MODEL, "cpu")
    assert (r["warmup_iters"], r["measured_iters"], r["repeats"]) == (1, 2, 1)
    assert (r["cards"], r["nodes"], r["batch_per_card"], r["global_batch"]) == (1, 1, 1, 1)
    assert (r["image_min_size"], r["image_max_size"]) == (64, 96)
    assert r["throughput_img_s"] > 0 and r["first_iter_s"] > 0
    assert r["step_time_ms"]["p50"] > 0 and r["latency_ms"] is None
    assert r["throughput_whole_img_s"] > 0 and r["throughput_compute_only_img_s"] > 0
    assert r["conduct"]["iterations"] == 2 and r["batch_shapes"] == {"64x96": 2}
    assert 0 <= r["data_time_share"] < 1
    # the peak RSS holds the weights, their gradients and SGD's momentum, in MB (not kB, not B)
    weights_mb = sum(p.numel() * 4 for p in build_detection_model(model_config(MODEL)).parameters())
    assert r["peak_mem_kind"] == "process_rss"
    assert 3 * weights_mb / 2**20 < r["peak_mem_mb"] < 8192
    assert math.isfinite(r["final_loss"])
    assert r["compute_dtype"] == "float32"  # what the body's first conv ran in
    assert set(r["ops"]) >= {"nms", "roi_align"}
    assert r["dataset"]["name"] == "synthetic" and r["dataset"]["images"] == 4
    assert r["dataset"]["fingerprint"].startswith("sha1:")
    assert len(r["config_hash"]) == 40 and r["seed"] == 0
    assert 0 <= r["accuracy"]["bbox_ap"] < 0.99 and r["time_to_accuracy_s"] is None
    assert r["evaluator"] == "faster-coco-eval" and r["eval_s"] > 0 and r["mask_paste"] is None
    assert r["command"].startswith(f"python -m benchmark train --model {MODEL}")
    assert "--worker" not in r["command"] and "--run-id" not in r["command"]
    # the one-line summary, and the run's folder beside the record
    assert f"{r['throughput_img_s']:.2f} img/s" in done.stdout
    run_dir = results / "runs" / r["run_id"]
    assert "INPUT:" in (run_dir / "config.yaml").read_text()
    assert "rcnn.trainer" in (run_dir / "log.txt").read_text()
    # the synthetic sets are cached under the results folder, keyed by split/size/count/seed
    assert sorted(p.name for p in (results / "cache" / "synthetic").iterdir()) == [
        "train-85x64-n4-seed0-3cls",
        "val-85x64-n4-seed0-3cls",
    ]


def test_infer_records_latency_accuracy_and_repeats(tmp_path):
    results = tmp_path / "results"
    # 4 test images in batches of 2: one warm-up batch, then one measured batch per repeat
    done = bench("infer", *TINY, "--batch", "2", "--warmup", "1", "--repeats", "2", results=results)
    assert done.returncode == 0, done.stderr
    r = only_record(results)
    assert (r["status"], r["mode"], r["global_batch"]) == ("ok", "infer", 2)
    assert (r["warmup_iters"], r["measured_iters"], r["repeats"]) == (1, 2, 2)
    assert r["throughput_img_s"] > 0 and r["latency_ms"]["p50"] > 0
    assert r["throughput_spread"]["min"] <= r["throughput_spread"]["max"]
    # random weights: an AP near zero, recorded as measured
    assert 0 <= r["accuracy"]["bbox_ap"] < 0.1
    assert {"bbox_ap50", "bbox_ap75"} <= set(r["accuracy"])
    assert r["dataset"]["images"] == 4
    assert "random weights" in done.stdout
    # requirements-test.txt installs faster-coco-eval; masks off, so no paste to name
    assert r["evaluator"] == "faster-coco-eval" and r["eval_s"] > 0 and r["mask_paste"] is None


def test_infer_without_faster_coco_eval_scores_with_pycocotools(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)
    results = tmp_path / "results"
    mask = ["--model", "mask_rcnn_R_18_FPN_quick", *TINY[2:], "--warmup", "0"]
    assert main(["infer", *mask, "--results", str(results), "TEST.MASK_PASTE", "subpixel"]) == 0
    r = only_record(results)
    assert (r["evaluator"], r["mask_paste"]) == ("pycocotools", "subpixel") and r["eval_s"] > 0
    assert 0 <= r["accuracy"]["segm_ap"] < 0.1


@pytest.mark.parametrize(
    ("flags", "expected"),
    [([], True), (["--channels-last", "off"], False), (["--channels-last"], True)],
)
def test_infer_runs_the_adapters_fast_layout_unless_told(tmp_path, monkeypatch, flags, expected):
    from rcnn.modeling.detector.generalized_rcnn import GeneralizedRCNN

    seen = []  # the memory format of the first convolution's weight at each forward
    forward = GeneralizedRCNN.forward

    def recording(self, *args, **kwargs):
        weight = next(m.weight for m in self.backbone.modules() if isinstance(m, torch.nn.Conv2d))
        seen.append(weight.is_contiguous(memory_format=torch.channels_last))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(GeneralizedRCNN, "forward", recording)
    results = tmp_path / "results"
    argv = ["infer", *TINY, "--batch", "2", "--warmup", "1", *flags, "--results", str(results)]
    assert main(argv) == 0
    r = only_record(results)
    assert seen and set(seen) == {expected} and r["channels_last"] is expected
    # the command a user reruns keeps the layout asked for, in the one spelling
    asked = f"--channels-last {'on' if expected else 'off'}"
    assert (asked in r["command"]) is (flags != [])


def test_unsupported_precision_fails_with_one_message_and_a_record(tmp_path):
    results = tmp_path / "results"
    done = bench("train", *TINY, "--precision", "fp16", "--iters", "1", results=results)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "error: precision 'fp16' is not supported on cpu; this device supports fp32, bf16"
    )
    r = only_record(results)
    assert (r["status"], r["precision"], r["device_type"]) == ("failed", "fp16", "cpu")
    assert r["error"].startswith("DeviceError: precision 'fp16' is not supported")


def test_evaluation_is_kept_out_of_the_step_times(tmp_path, monkeypatch, rcnn_logger):
    """The evaluation at iteration 2 (of warm-up 1 + 2 measured) sleeps far longer than any
    step takes here: it must show in no step time, nor in the window's wall time."""
    from rcnn.engine import run

    pause_s = 20.0
    evaluated = []

    def slow_evaluate(session, model):
        evaluated.append(time.perf_counter())
        time.sleep(pause_s)
        return {"bbox": dict.fromkeys(STATS, 0.0)}  # every COCO stat, as evaluate gives

    monkeypatch.setattr(run, "evaluate", slow_evaluate)
    results = tmp_path / "results"
    argv = ["train", *TINY, "--batch", "1", "--iters", "2", "--warmup", "1"]
    argv += ["--target-ap", "0.99", "--eval-period", "2", "--results", str(results)]
    assert main(argv) == 0
    r = only_record(results)
    assert len(evaluated) == 1 and r["measured_iters"] == 2
    assert r["step_time_ms"]["p99"] < pause_s * 1000
    assert r["measured_iters"] / r["throughput_img_s"] < pause_s  # the window's wall time


@pytest.fixture
def rcnn_logger():
    """The verb sets up the `rcnn` logger of its process; give this test process's back."""
    logger = logging.getLogger("rcnn")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate, logger.level = saved


def test_unknown_model_and_bad_data_are_user_errors(tmp_path, capsys, rcnn_logger):
    results = tmp_path / "results"
    assert (
        main(["infer", "--model", "no_such_config", "--device", "cpu", "--results", str(results)])
        == 2
    )
    err = capsys.readouterr().err
    assert "no such config" in err and MODEL in err and "Traceback" not in err
    assert (
        main(["infer", *TINY[:-2], "--data", f"coco:{tmp_path}/nowhere", "--results", str(results)])
        == 2
    )
    err = capsys.readouterr().err
    assert "nowhere/val2017 not found; expected the COCO 2017 layout" in err
    records, _ = read_records([results])
    assert [r["status"] for r in records] == ["failed", "failed"]


@pytest.mark.slow
def test_two_cards_on_cpu_run_two_gloo_processes_and_write_one_record(tmp_path):
    results = tmp_path / "results"
    done = bench(
        "train",
        *TINY,
        "--cards",
        "2",
        "--batch",
        "1",
        "--iters",
        "2",
        "--warmup",
        "1",
        results=results,
    )
    assert done.returncode == 0, done.stderr
    assert "torch.distributed.run --nproc-per-node 2 --standalone" in done.stdout
    r = only_record(results)
    assert (r["status"], r["cards"], r["batch_per_card"], r["global_batch"]) == ("ok", 2, 1, 2)
    assert r["measured_iters"] == 2  # per rank; both ranks' steps are in the percentiles
    # both ranks' images over the window's wall time: in lockstep (DDP), that is the global
    # batch per mean step; one rank's alone would be half of it
    per_step = r["throughput_img_s"] * r["step_time_ms"]["mean"] / 1000
    assert 0.75 * r["global_batch"] < per_step <= r["global_batch"] * (1 + 1e-9)
    assert "--cards 2" in r["command"] and "--worker" not in r["command"]


def test_train_seeds_records_each_seed_and_the_report_gives_mean_and_spread(tmp_path):
    results = tmp_path / "results"
    train = ["train", *TINY, "--batch", "1", "--iters", "2", "--warmup", "0", "--seeds", "3"]
    assert main([*train, "--results", str(results), "SEED", "4"]) == 0
    records, problems = read_records([results])
    assert problems == [] and all(validate(r) == [] for r in records)
    records.sort(key=lambda r: r["seed"])
    assert [r["seed"] for r in records] == [4, 5, 6]
    for r in records:  # each evaluated at its end, and its command repeats that one run
        assert r["status"] == "ok" and r["evaluator"] == "faster-coco-eval" and r["eval_s"] > 0
        assert 0 <= r["accuracy"]["bbox_ap"] <= 1 and "bbox_ap50" in r["accuracy"]
        assert r["command"].endswith(f"--eval-period 2 SEED {r['seed']}")
        assert "--seeds" not in r["command"]
    assert len({r["final_loss"] for r in records}) == 3  # the seed reached the model

    report = tmp_path / "report"
    assert bench("report", "--out", str(report), results=results).returncode == 0
    text = (report / "REPORT.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith(f"| {MODEL} |")]
    (acc,) = [line for line in rows if " ± " in line]
    cells = [c.strip() for c in acc.strip("|").split("|")]
    aps = [r["accuracy"]["bbox_ap"] for r in records]
    mean, sd = statistics.mean(aps), statistics.stdev(aps)
    assert cells[5] == f"{mean:.4g} ± {sd:.2g}" and cells[-1] == "3"
