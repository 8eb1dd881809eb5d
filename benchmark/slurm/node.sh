#!/usr/bin/env bash
# One node's part of a SLURM job: srun starts this once per node (--ntasks-per-node=1); it
# starts `python -m benchmark VERB` with the multi-node flags taken from SLURM's variables, so
# no rank is set by hand:
#   --nodes        SLURM_JOB_NUM_NODES (SLURM_NNODES)
#   --node-rank    SLURM_NODEID
#   --master-addr  the first host of SLURM_JOB_NODELIST (scontrol show hostnames)
#   --master-port  MASTER_PORT, else 20000 + SLURM_JOB_ID % 20000
#   --cards        CARDS, else SLURM_GPUS_ON_NODE, else all visible cards
#   --run-id       slurm-JOBID-STEPID: the same on every node, so the report joins the nodes
# Usage: bash node.sh train|infer [harness arguments...]   (the sbatch scripts call it)
set -euo pipefail

root="${RCNN_BENCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# shellcheck source=benchmark/common.sh
source "$root/benchmark/common.sh"
bench_python

verb=$1
shift
nodes="${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:?not inside a SLURM allocation (no SLURM_NNODES)}}"
node_rank="${SLURM_NODEID:?srun sets SLURM_NODEID: start this script through srun}"
master_addr="${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | awk 'NR == 1')}"
master_port="${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}"
cards="${CARDS:-${SLURM_GPUS_ON_NODE:-all}}"

cd "$root"
exec "$RCNN_BENCH_PYTHON" -m benchmark "$verb" \
  --nodes "$nodes" --node-rank "$node_rank" \
  --master-addr "$master_addr" --master-port "$master_port" \
  --cards "$cards" --run-id "slurm-${SLURM_JOB_ID}-${SLURM_STEP_ID:-0}" "$@"
