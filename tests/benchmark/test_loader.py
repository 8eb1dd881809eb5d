"""`python -m benchmark loader` as a user runs it: synthetic, COCO and text-list sets, a real
record, the console table, and the report's loader table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.record import read_records, validate
from rcnn.data.synthetic import SyntheticSpec, generate

MODEL = "faster_rcnn_R_18_FPN_quick"
TINY = ["--model", MODEL, "--device", "cpu", "--size", "64x96", "--iters", "3", "--warmup", "1"]


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RESULTS_DIR"}
    return subprocess.run(
        [sys.executable, "-m", "benchmark", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
        check=False,
    )


def _coco_layout(tmp_path: Path) -> str:
    """A COCO 2017 layout (train2017/, annotations/instances_train2017.json) of a small set."""
    made = tmp_path / "made"
    generate(SyntheticSpec(6, 0, width=96, height=64, seed=2), made)
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    shutil.copytree(made / "train", root / "train2017")
    shutil.copy(
        made / "annotations/instances_train.json", root / "annotations/instances_train2017.json"
    )
    return f"coco:{root}"


def _txt_list(tmp_path: Path) -> str:
    made = tmp_path / "made"
    generate(SyntheticSpec(4, 0, width=96, height=64, seed=3), made)
    lines = [f"train/train_{i:06d}.jpg 10,10,50,40,0 20,5,60,30,1" for i in range(1, 5)]
    (made / "list.txt").write_text("\n".join(lines) + "\n")
    (made / "classes.txt").write_text("circle\nsquare\ntriangle\n")
    return f"txt:{made / 'list.txt'}"


@pytest.mark.parametrize("data", ["synthetic:8", "coco", "txt"])
def test_loader_prints_its_table_and_records_each_worker_count(tmp_path, data):
    data = {"coco": _coco_layout, "txt": _txt_list}.get(data, lambda _: data)(tmp_path)
    results = tmp_path / "results"
    done = bench(
        "loader", *TINY, "--data", data, "--workers", "1,0", "--compute-img-s", "2.5",
        "--results", str(results), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records, problems = read_records([results])
    assert problems == [] and len(records) == 1
    r = records[0]
    assert validate(r) == [] and (r["status"], r["mode"]) == ("ok", "loader")
    assert (r["image_min_size"], r["image_max_size"], r["batch_per_card"]) == (64, 96, 2)
    loader = r["loader"]
    assert [w["workers"] for w in loader["runs"]] == [0, 1]
    best = max(w["throughput_img_s"] for w in loader["runs"])
    assert r["throughput_img_s"] == best > 0
    assert loader["cards_fed"] == pytest.approx(best / 2.5)
    assert loader["decode_ms"]["p50"] > 0 and loader["transform_ms"]["p50"] > 0
    assert loader["pinned"] is False  # the CPU does not pin
    assert r["measured_iters"] == 3 and r["data_time_share"] is None
    assert r["command"].startswith("python -m benchmark loader") and "--workers 1,0" in r["command"]
    lines = done.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("workers")) :]
    assert table[0].split() == ["workers", "img/s", "first", "batch", "s"]
    assert [line.split()[0] for line in table[1:3]] == ["0", "1"]
    assert f"cards fed at 2.5 img/s compute each: {best / 2.5:.2f}" in done.stdout

    out = tmp_path / "report"
    assert (
        bench("report", "--results", str(results), "--out", str(out), cwd=tmp_path).returncode == 0
    )
    text = (out / "REPORT.md").read_text()
    assert "## Data loader (loader)" in text
    (row,) = [line for line in text.splitlines() if r["run_id"] in line]
    assert f"{best / 2.5:.2f} at 2.5 img/s" in row and "| off |" in row


def test_bad_worker_counts_end_in_one_line_and_a_failed_record(tmp_path):
    results = tmp_path / "results"
    done = bench(
        "loader", *TINY, "--data", "synthetic:4", "--workers", "0,two", "--results", str(results),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines()[-1] == "error: --workers 0,two: expected counts like 0,1,4"
    )
    records, _ = read_records([results])
    assert [(r["status"], r["mode"]) for r in records] == [("failed", "loader")]
