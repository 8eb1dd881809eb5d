"""The one-click scripts and the quickstart, run as a new user runs them (bash, real processes).

Every script gets tiny settings through its passthrough; the records they write merge in one
report. FasterRCNN_Train.sh goes through benchmark/setup_env.sh (RCNN_PYTHON: this interpreter),
the others reuse it through RCNN_BENCH_PYTHON, as the quickstart's steps do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.__main__ import main
from benchmark.record import read_records

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {  # script: (mode, the CPU default model)
    "FasterRCNN_Train.sh": ("train", "faster_rcnn_R_18_FPN_quick"),
    "FasterRCNN_Infer.sh": ("infer", "faster_rcnn_R_18_FPN_quick"),
    "MaskRCNN_Train.sh": ("train", "mask_rcnn_R_18_FPN_quick"),
    "MaskRCNN_Infer.sh": ("infer", "mask_rcnn_R_18_FPN_quick"),
    "LibraRCNN_Train.sh": ("train", "libra_faster_rcnn_R_18_FPN_quick"),
    "LibraRCNN_Infer.sh": ("infer", "libra_faster_rcnn_R_18_FPN_quick"),
}
TINY = [
    "--device",
    "cpu",
    "--batch",
    "1",
    "--data",
    "synthetic:1",
    "--size",
    "64x96",
    "--warmup",
    "0",
]


def run_script(name: str, *args: str, results: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("RCNN_BENCH_PYTHON", "QUICK")}
    full_env.update(RESULTS_DIR=str(results), DATASET_DIR=str(results / "no_datasets"))
    full_env.update(env)
    return subprocess.run(
        ["bash", str(ROOT / "benchmark" / name), *args],
        capture_output=True,
        text=True,
        cwd=results.parent,
        env=full_env,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess]]:
    results = tmp_path_factory.mktemp("scripts") / "results"
    runs = {}
    for name, (mode, _) in SCRIPTS.items():
        setup = (
            {"RCNN_PYTHON": sys.executable}
            if name == "FasterRCNN_Train.sh"
            else {"RCNN_BENCH_PYTHON": sys.executable}
        )
        extra = ["--iters", "1"] if mode == "train" else []
        runs[name] = run_script(name, *TINY, *extra, results=results, **setup)
    return results, runs


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_writes_a_record(script_runs, name):
    results, runs = script_runs
    done = runs[name]
    assert done.returncode == 0, done.stderr
    mode, model = SCRIPTS[name]
    records, _ = read_records([results])
    mine = [r for r in records if r["model"] == model and r["mode"] == mode]
    assert len(mine) == 1
    r = mine[0]
    assert (r["status"], r["device_type"], r["cards"], r["dataset"]["name"]) == (
        "ok",
        "cpu",
        1,
        "synthetic",
    )
    assert f"--model {model} --device cpu --precision fp32 --cards all" in done.stderr
    if name == "MaskRCNN_Infer.sh":
        assert "segm_ap" in r["accuracy"]


@pytest.mark.slow
def test_report_merges_the_scripts_records(script_runs, tmp_path, capsys):
    results, _ = script_runs
    assert main(["report", "--results", str(results), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for _, model in SCRIPTS.values():
        assert f"| {model} | rcnn |" in out
    assert "from 6 records (6 ok, 0 not ok)" in (tmp_path / "REPORT.md").read_text()


def test_help_and_bad_arguments(tmp_path):
    env = {"RCNN_BENCH_PYTHON": sys.executable}
    done = run_script("LibraRCNN_Infer.sh", "--help", results=tmp_path / "r", **env)
    assert done.returncode == 0
    assert "libra_faster_rcnn_R_50_FPN_1x on an accelerator" in done.stdout
    done = run_script("FasterRCNN_Train.sh", "--device", results=tmp_path / "r", **env)
    assert done.returncode == 2 and done.stderr.strip() == "error: --device needs a value"


def test_a_coco_folder_is_the_default_data(tmp_path):
    datasets = tmp_path / "datasets"
    (datasets / "coco" / "annotations").mkdir(parents=True)
    done = run_script(
        "FasterRCNN_Infer.sh",
        "--device",
        "cpu",
        results=tmp_path / "r",
        RCNN_BENCH_PYTHON=sys.executable,
        DATASET_DIR=str(datasets),
    )
    assert done.returncode == 2
    assert f"--data coco:{datasets}/coco" in done.stderr
    assert "val2017 not found; expected the COCO 2017 layout" in done.stderr


@pytest.mark.slow
def test_quickstart_smoke(tmp_path):
    results = tmp_path / "results"
    done = run_script(
        "quickstart.sh",
        "--device",
        "cpu",
        results=results,
        QUICK="1",
        RCNN_BENCH_PYTHON=sys.executable,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records, problems = read_records([results])
    assert problems == []
    statuses = sorted((r["mode"], r["precision"], r["status"]) for r in records)
    assert statuses == [  # the sweep's two cells, then training and inference with its weights
        ("infer", "fp32", "ok"),
        ("infer", "fp32", "ok"),
        ("infer", "tf32", "skipped"),
        ("train", "fp32", "ok"),
    ]
    assert "skipped: precision 'tf32' is not supported on cpu" in done.stdout  # sweep table
    trained = results / "quickstart" / "faster_rcnn_R_18_FPN_quick_3it.pth"
    assert trained.is_file()
    with_ckpt = [r for r in records if "--ckpt" in (r["command"] or "")]
    assert len(with_ckpt) == 1 and with_ckpt[0]["accuracy"] is not None
    assert "## Accuracy (COCO)" in done.stdout
    assert (results / "REPORT.md").is_file()
