"""The launcher's torchrun command, the workers' environment and argument round trip."""

from __future__ import annotations

import argparse
import sys

import pytest

from benchmark.__main__ import build_parser
from benchmark.commands import train
from benchmark.errors import UsageError
from benchmark.launch import exit_code, summary_line, torchrun_command, worker_env
from benchmark.workload.args import command_line, to_argv


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
