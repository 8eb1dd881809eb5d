"""The launcher's torchrun command, the workers' environment and argument round trip."""

from __future__ import annotations

import argparse
import signal
import sys

import pytest

from benchmark.__main__ import build_parser
from benchmark.commands import train
from benchmark.errors import UsageError
from benchmark.launch import (
    Failure,
    conclude_run,
    exit_code,
    parse_failures,
    summary_line,
    torchrun_command,
    worker_env,
)
from benchmark.record import new_run_id, read_records, save_run
from benchmark.workload.args import command_line, to_argv
from rcnn.utils.signals import StopSignal


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_single_node_uses_a_standalone_rendezvous():
    cmd = torchrun_command("train", ["--model", "m"], 4, 1, 0, "10.0.0.1", 29500)
    assert cmd == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "4",
        "--standalone",
        "-m",
        "benchmark",
        "train",
        "--model",
        "m",
        "--worker",
    ]


def test_multi_node_names_the_master():
    cmd = torchrun_command("infer", [], 8, 2, 1, "10.0.0.1", 29600)
    assert cmd[3:13] == [
        "--nproc-per-node",
        "8",
        "--nnodes",
        "2",
        "--node-rank",
        "1",
        "--master-addr",
        "10.0.0.1",
        "--master-port",
        "29600",
    ]
    assert cmd[-4:] == ["-m", "benchmark", "infer", "--worker"]


def test_worker_env_passes_visible_devices_and_splits_threads(monkeypatch):
    monkeypatch.setenv("MLU_VISIBLE_DEVICES", "2,3")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    env = worker_env(4)
    assert env["MLU_VISIBLE_DEVICES"] == "2,3"
    assert env["OMP_NUM_THREADS"] == "2"
    assert worker_env(16)["OMP_NUM_THREADS"] == "1"  # never zero threads
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert worker_env(4)["OMP_NUM_THREADS"] == "3"  # the user's choice stands


@pytest.mark.parametrize(
    ("status", "exc", "code"),
    [
        ("failed", UsageError("bad --size"), 2),
        ("failed", RuntimeError("boom"), 1),
        ("nan", RuntimeError("loss is nan"), 3),
        ("oom", RuntimeError("out of memory"), 4),
        ("weird", RuntimeError("?"), 1),
    ],
)
def test_exit_code_says_how_a_run_ended(status, exc, code):
    assert exit_code(status, exc) == code


def test_worker_arguments_rebuild_the_same_run():
    args = parse(
        "train",
        "--model",
        "m",
        "--cards",
        "2",
        "--size",
        "64x96",
        "--iters",
        "3",
        "--target-ap",
        "0.3",
        "--eval-period",
        "10",
        "--run-id",
        "R",
        "SOLVER.BASE_LR",
        "0.02",
    )
    argv = to_argv(args, train.OPTIONS)
    assert argv[-2:] == ["SOLVER.BASE_LR", "0.02"]  # overrides stay last
    again = parse("train", *argv)
    assert vars(again) == vars(args)
    assert "--master-port" not in argv  # single node: torchrun picks the rendezvous


def test_command_is_what_a_user_types(monkeypatch):
    monkeypatch.delenv("RESULTS_DIR", raising=False)
    args = parse("infer", "--model", "m", "--cards", "2", "--run-id", "R", "--worker")
    assert command_line("infer", args) == (
        "python -m benchmark infer --model m --device auto --precision fp32 --cards 2 "
        "--nodes 1 --batch 1 --data synthetic --warmup 2 --repeats 1 --sync iteration "
        "--results results"
    )


def test_summary_line():
    record = {
        "mode": "infer",
        "model": "m",
        "cards": 2,
        "device_type": "cuda",
        "precision": "bf16",
        "batch_per_card": 4,
        "throughput_img_s": 123.456,
        "latency_ms": {"p50": 12.34},
        "accuracy": {"bbox_ap": 0.3712},
        "run_id": "R",
    }
    assert summary_line(record) == (
        "infer m on 2 x cuda bf16, batch 4/card: 123.46 img/s, p50 latency 12.3 ms, "
        "bbox AP 0.371 [R]"
    )


# torchrun's ChildFailedError report as torch 2.14 prints it (2.1 leaves out "(SIGKILL)")
REPORT = """
============================================================
benchmark FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-05_07:40:01
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 4242)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-05_07:40:01
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 4243) {suffix}
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 4243
============================================================
"""


@pytest.mark.parametrize("suffix", ["(SIGKILL)", ""])
def test_parse_failures_reads_torchruns_report(suffix) -> None:
    failures = parse_failures("W1205 noise\n" + REPORT.format(suffix=suffix), "node-a.example")
    assert failures == [Failure(1, "node-a.example", -9), Failure(0, "node-a.example", 1)]
    assert failures[0].describe() == "rank 1 on node-a.example was killed by SIGKILL"
    assert failures[1].describe() == "rank 0 on node-a.example exited with code 1"
    assert parse_failures("no report here", "h") == []


def _run_args(tmp_path, node_rank: int = 0) -> tuple[argparse.Namespace, dict]:
    args = argparse.Namespace(results=str(tmp_path), run_id=new_run_id(), node_rank=node_rank)
    fields = dict(run_id=args.run_id, mode="train", model="m", device_type="cpu", cards=2)
    return args, {**fields, "precision": "fp32", "nodes": 1}


def test_a_killed_rank_replaces_the_survivors_record(tmp_path, capsys) -> None:
    """Rank 0 recorded gloo's text (or an interruption by torchrun's SIGTERM) first; the
    launcher, which saw rank 1 killed, replaces it with one failed record naming rank 1."""
    args, fields = _run_args(tmp_path)
    for survivor in (RuntimeError("Connection closed by peer [127.0.0.1]:1"), KeyboardInterrupt()):
        save_run(tmp_path, fields, survivor)
        failures = parse_failures(REPORT.format(suffix=""), "node-a.example")
        said = ["error: RuntimeError: Connection closed by peer [127.0.0.1]:1\n"]
        code = conclude_run(args, fields, 1, None, failures, said, tmp_path / "workers.log")
        err = capsys.readouterr().err
        assert code == 1
        assert err == "error: rank 1 on node-a.example was killed by SIGKILL\n"
        records, problems = read_records([tmp_path])
        assert problems == [] and [r["status"] for r in records] == ["failed"]
        assert records[0]["error"] == "RankLost: rank 1 on node-a.example was killed by SIGKILL"


def test_the_launcher_stopped_itself_records_an_interruption(tmp_path, capsys) -> None:
    args, fields = _run_args(tmp_path)
    stop = StopSignal(signal.SIGTERM)
    assert conclude_run(args, fields, 1, stop, [], [], tmp_path / "workers.log") == 130
    assert capsys.readouterr().err == "error: interrupted (SIGTERM)\n"
    records, _ = read_records([tmp_path])
    assert [(r["status"], r["error"]) for r in records] == [
        ("interrupted", "interrupted (SIGTERM)")
    ]


def test_a_rank_that_failed_on_its_own_keeps_its_record(tmp_path, capsys) -> None:
    """No rank was killed: rank 0's own error (here a NaN) is the run's, line and record."""
    args, fields = _run_args(tmp_path)
    save_run(tmp_path, fields, FloatingPointError("loss is nan at iteration 3"))
    said = ["error: FloatingPointError: loss is nan at iteration 3\n"]
    failures = [Failure(0, "h", 3)]
    assert conclude_run(args, fields, 3, None, failures, said, tmp_path / "workers.log") == 3
    assert capsys.readouterr().err == said[0]
    records, _ = read_records([tmp_path])
    assert [r["status"] for r in records] == ["nan"]


def test_a_failed_rank_without_a_record_is_named_with_its_line(tmp_path, capsys) -> None:
    """Rank 1 raised (rank 0, SIGTERMed by torchrun, wrote nothing): the record names rank 1
    and carries its own line."""
    args, fields = _run_args(tmp_path)
    said = ["error (rank 1): ValueError: bad box in image 7\n"]
    code = conclude_run(args, fields, 1, None, [Failure(1, "h", 1)], said, tmp_path / "log")
    assert code == 1
    expected = "rank 1 on h exited with code 1: ValueError: bad box in image 7"
    assert capsys.readouterr().err == f"error: {expected}\n"
    records, _ = read_records([tmp_path])
    assert [r["error"] for r in records] == [f"RankLost: {expected}"]
