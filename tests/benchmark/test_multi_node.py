"""Two nodes on one host: two launchers (--nodes 2, loopback rendezvous on a free port, one CPU
card each) make one run; a node lost mid-run is named by the other, which ends in one line."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from benchmark.record import read_records
from benchmark.report import build_report

TINY = ["--model", "faster_rcnn_R_18_FPN_quick", "--device", "cpu", "--size", "64x96"]
TINY += ["--data", "synthetic:4", "--batch", "1", "--warmup", "1"]
HOST = socket.gethostname()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(bench, tmp_path: Path, run_id: str, *args: str) -> list[subprocess.Popen]:
    """Node 0 and node 1 of one run, each with its own results folder (as on two hosts)."""
    rendezvous = ["--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    shared = [*args, "--cards", "1", "--nodes", "2", *rendezvous, "--run-id", run_id]
    return [bench([*shared, "--node-rank", str(node)], tmp_path / f"node{node}") for node in (0, 1)]


def end_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_two_nodes_make_one_record_and_a_scaling_row(tmp_path, bench) -> None:
    one = bench(["train", *TINY, "--iters", "2"], tmp_path / "node0")
    _, err = one.communicate(timeout=300)
    assert one.returncode == 0, err[-3000:]
    procs = two_nodes(bench, tmp_path, "two-nodes", "train", *TINY, "--iters", "2")
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        end_all(procs)
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert not (tmp_path / "node1" / "records.jsonl").exists()  # node 1 ended well
    records, problems = read_records([tmp_path / "node0"])
    assert problems == [] and len(records) == 2  # the 1-card run, and the 2-node run
    two = next(r for r in records if r["run_id"] == "two-nodes")
    assert (two["status"], two["nodes"], two["cards"], two["node_rank"]) == ("ok", 2, 2, 0)
    assert two["hosts"] == [
        {"rank": 0, "node": 0, "hostname": HOST},
        {"rank": 1, "node": 1, "hostname": HOST},
    ]
    assert two["collective_backend"] == "gloo" and two["rendezvous"].startswith("127.0.0.1:")
    link = two["interconnect"]
    assert link["backend"] == "gloo" and link["bytes"] == 25 * 2**20
    assert link["busbw_gb_s"] > 0 and link["latency_us"] > 0
    text = build_report(records, tmp_path / "report", ["node0"]).text
    single = next(r for r in records if r["cards"] == 1)
    efficiency = two["throughput_img_s"] / (2 * single["throughput_img_s"])
    row = next(line for line in text.splitlines() if "| fp32 | 2 | 2 |" in line)  # cards, nodes
    assert f"{efficiency * 100:.1f}%" in row and f"{link['busbw_gb_s']:.3g}" in row, row
    flagged = f"below 70% at busbw {link['busbw_gb_s']:.3g} GB/s" in row
    assert flagged == (efficiency < 0.7), row


def test_a_lost_node_is_named_by_the_other(tmp_path, worker_pid, bench) -> None:
    """Node 1's worker dies mid-run: node 0 ends within 60 s with one line and a failed record
    naming rank 1 on node 1; node 1 leaves its own failed record, on its node; the report joins
    the two by run id."""
    procs = two_nodes(bench, tmp_path, "lost-node", "train", *TINY, "--iters", "100000")
    said: list[str] = []  # node 0's stdout: rank 0 logs its training iterations there
    threading.Thread(target=lambda: said.extend(procs[0].stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 300
        while not any(" iter: " in line for line in said):  # both ranks are training
            assert all(p.poll() is None for p in procs) and time.monotonic() < deadline, said
            time.sleep(0.2)
        os.kill(worker_pid(tmp_path / "node1", 1), signal.SIGKILL)
        killed = time.monotonic()
        procs[0].wait(timeout=120)
        took = time.monotonic() - killed
        err0 = procs[0].stderr.read()
        _, err1 = procs[1].communicate(timeout=120)
    finally:
        end_all(procs)
    assert took < 60 and procs[0].returncode == 1, err0[-3000:]
    lines = [line for line in err0.splitlines() if line.strip()]
    lost = f"rank 1 on {HOST} (node 1) was lost: "
    assert len(lines) == 1 and lines[0].startswith(f"error: {lost}"), err0[-3000:]
    node0, problems = read_records([tmp_path / "node0"])
    assert problems == [] and len(node0) == 1
    assert node0[0]["status"] == "failed" and node0[0]["error"].startswith(f"RankLost: {lost}")
    assert node0[0]["hosts"][1] == {"rank": 1, "node": 1, "hostname": HOST}
    node1, problems = read_records([tmp_path / "node1"])
    assert problems == [] and [(r["run_id"], r["node_rank"]) for r in node1] == [("lost-node", 1)]
    assert node1[0]["error"] == f"RankLost: rank 1 on {HOST} was killed by SIGKILL", err1[-3000:]
    both, problems = read_records([tmp_path / "node0", tmp_path / "node1"])
    assert problems == [] and len(both) == 2
    text = build_report(both, tmp_path / "report", ["node0", "node1"]).text
    rows = [line for line in text.splitlines() if "lost-node" in line]
    assert len(rows) == 1 and "node 1: RankLost: rank 1" in rows[0], rows
