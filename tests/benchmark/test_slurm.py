"""benchmark/slurm/*.sbatch under a SIMULATED SLURM on one host: no slurmctld here, so `srun`
and `scontrol` on PATH are stand-ins that do what the real ones do for these scripts (srun:
one task per node of the allocation, with SLURM_NODEID, SLURM_PROCID, SLURM_LOCALID and
SLURM_STEP_ID set; scontrol show hostnames: the allocation's hosts). The scripts take every
rank and the rendezvous from those variables; the run is real (torchrun, gloo, 2 processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from benchmark.record import read_records

ROOT = Path(__file__).resolve().parents[2]

FAKE_SRUN = """#!/usr/bin/env bash
# simulated srun: --nodes=1 runs one task, else one per node of the allocation, in parallel
nodes=$SLURM_JOB_NUM_NODES
while [[ $1 == --* ]]; do
  case $1 in --nodes=*) nodes=${1#--nodes=} ;; esac
  shift
done
pids=()
for ((i = 0; i < nodes; i++)); do
  SLURM_NODEID=$i SLURM_PROCID=$i SLURM_LOCALID=0 SLURM_STEP_ID=0 "$@" &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
exit $rc
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
# simulated `scontrol show hostnames LIST`: every node of the allocation is this host
for ((i = 0; i < SLURM_JOB_NUM_NODES; i++)); do echo localhost; done
"""


def test_train_sbatch_runs_two_nodes_from_slurms_variables(tmp_path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "MASTER_"))}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        SLURM_JOB_ID="4242",
        SLURM_JOB_NUM_NODES="2",
        SLURM_NNODES="2",
        SLURM_JOB_NODELIST="sim[0-1]",
        SLURM_SUBMIT_DIR=str(ROOT),
        MASTER_PORT=str(port),  # the job id's port may be taken on a shared CI host
        CARDS="1",
        RCNN_BENCH_PYTHON=sys.executable,
        RESULTS_DIR=str(results),
        OMP_NUM_THREADS="1",
    )
    tiny = ["--model", "faster_rcnn_R_18_FPN_quick", "--device", "cpu", "--size", "64x96"]
    tiny += ["--data", "synthetic:4", "--batch", "1", "--iters", "2", "--warmup", "1"]
    done = subprocess.run(
        ["bash", str(ROOT / "benchmark/slurm/train.sbatch"), *tiny],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # sbatch runs a copy elsewhere: the script finds the project itself
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records, problems = read_records([results])
    assert problems == [] and len(records) == 1  # two node launchers, one run, one record
    record = records[0]
    assert (record["run_id"], record["status"], record["nodes"], record["cards"]) == (
        "slurm-4242-0",
        "ok",
        2,
        2,
    )
    assert [(h["rank"], h["node"]) for h in record["hosts"]] == [(0, 0), (1, 1)]
    assert record["rendezvous"] == f"localhost:{port}"
    # the flags node.sh made from SLURM's variables (the test gave none of them)
    assert (
        f"--nodes 2 --node-rank 0 --master-addr localhost --master-port {port}"
        in (record["command"])
    )
