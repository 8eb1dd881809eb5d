"""`python -m benchmark comm`: two CPU processes (gloo), a short size list, one record, a table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.__main__ import main
from benchmark.commands.comm import parse_sizes
from benchmark.errors import UsageError
from benchmark.record import read_records
from benchmark.report import build_report

ROOT = Path(__file__).resolve().parents[2]


def test_parse_sizes() -> None:
    assert parse_sizes("4K,1M,256M,8") == [4096, 2**20, 256 * 2**20, 8]
    for bad in ("4X", "3", "", "1.5M"):
        with pytest.raises(UsageError, match="--sizes"):
            parse_sizes(bad)


def test_bad_options_stop_before_any_process(tmp_path, capsys) -> None:
    results = str(tmp_path)
    assert main(["comm", "--device", "cpu", "--sizes", "4Q", "--results", results]) == 2
    assert "error: --sizes: '4Q' is not a size" in capsys.readouterr().err
    assert main(["comm", "--device", "cpu", "--cards", "1", "--results", results]) == 2
    assert "needs --cards 2 or more" in capsys.readouterr().err
    assert main(["comm", "--device", "cpu", "--ops", "bcast", "--results", results]) == 2
    assert "--ops bcast: not one of all_reduce, all_gather" in capsys.readouterr().err


def test_comm_on_two_cpu_processes_writes_one_record_and_a_table(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RESULTS_DIR"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", "comm", "--cards", "2", "--device", "cpu"]
        + ["--sizes", "4K,64K", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records, problems = read_records([tmp_path])
    assert problems == [] and len(records) == 1
    record = records[0]
    assert (record["mode"], record["status"], record["cards"]) == ("comm", "ok", 2)
    assert record["collective_backend"] == "gloo" and len(record["hosts"]) == 2
    rows = record["collectives"]
    assert [(r["op"], r["bytes"]) for r in rows] == [
        ("all_reduce", 4096),
        ("all_reduce", 65536),
        ("all_gather", 4096),
        ("all_gather", 65536),
    ]
    for r in rows:  # nccl-tests: algbw = bytes / time; busbw = algbw x 2(n-1)/n or x (n-1)/n
        assert r["algbw_gb_s"] == pytest.approx(r["bytes"] / (r["time_us"] * 1e-6) / 1e9)
        factor = 1.0 if r["op"] == "all_reduce" else 0.5
        assert r["busbw_gb_s"] == pytest.approx(r["algbw_gb_s"] * factor)
    printed = done.stdout.splitlines()
    assert any(line.split()[:2] == ["all_gather", "65536"] for line in printed), done.stdout
    text = build_report(records, tmp_path / "report", [str(tmp_path)]).text
    table = [line for line in text.splitlines() if "| gloo | all_" in line]
    assert len(table) == 4 and "| all_reduce | 64K |" in table[1], table
    assert f"| {rows[1]['busbw_gb_s']:.3g} |" in table[1], table
