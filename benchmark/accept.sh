#!/usr/bin/env bash
# The acceptance run on whatever accelerator is present, with synthetic data:
#   1. devices: every backend, the cards, precisions and collective of this one
#   2. ops: native vs kernel time of the detection ops on the card, and whether they agree
#   3. verify: the quick Faster and Mask R-CNN, trained here for a few hundred iterations,
#      against the CPU in fp32 (detections, masks, one training step); Faster also in bf16
#   4. a precision sweep (fp32, tf32, fp16, bf16) of R-50-FPN Faster and Mask R-CNN, training
#      and inference at 800x1333 on one card (precisions the card lacks are recorded skipped)
#   5. training of both on every card vs one card (fp32), when there are several
#   6. the report rebuilt from this run's records ($RESULTS_DIR/accept)
#   bash benchmark/accept.sh [--device D] [--allow-cpu]
# With no accelerator it says so and exits 1; --allow-cpu runs a tiny CPU version of the same
# steps instead (quick R-18 configs, 64x96 images, single iterations, verify of random weights,
# a sweep of the quick Faster R-CNN only, no ops timing): what the tests run.
# A failing step is reported and the rest still run; the exit status is 1 if any step failed.
#
# Time budget, under 8 minutes on one card: each sweep cell is a process that starts torch,
# builds the model and makes 800x1333 synthetic images (about 10-15 s on a current GPU host)
# before its 2 warm-up and 5 measured iterations (well under a second each at batch 2), so the
# 16 one-card cells take about 4 minutes; the two quick trainings (300 iterations of 128-pixel
# images at batch 4) about 20 s each; ops at 5 repeats and the three verify runs about a minute
# together. These are estimates from the per-process start-up and step times, not a timing of
# this script on a card (none was at hand when it was written); raise SWEEP_ITERS only with
# that budget in mind.
set -euo pipefail

SWEEP_ITERS=5    # measured iterations per sweep cell, after SWEEP_WARMUP
SWEEP_WARMUP=2   # enough for cudnn's algorithm search and the allocator to settle
QUICK_ITERS=300  # quick-config training before verify: detections with real scores
OPS_REPEATS=5

# shellcheck source=benchmark/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

device=auto
allow_cpu=0
while (($#)); do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --allow-cpu) allow_cpu=1; shift ;;
    -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

bench_python
py=$RCNN_BENCH_PYTHON
results="$RESULTS_DIR/accept"
# "<name> <cards>" of the device, or "host 1" for the CPU; a device that is not here says why
read -r kind cards < <("$py" - "$device" <<'PY'
import sys

from rcnn.device import DeviceError, resolve

try:
    adapter, _ = resolve(sys.argv[1])
except DeviceError as err:
    print(f"error: {err}", file=sys.stderr)
    print("missing 0")
else:
    print(f"{adapter.name if adapter.is_accelerator else 'host'} {adapter.device_count()}")
PY
)
if [[ "$kind" == missing ]]; then
  exit 1
fi
if [[ "$kind" == host && "$allow_cpu" != 1 ]]; then
  echo "error: no accelerator here (--device $device resolves to the CPU); accept.sh measures" \
    "a card. --allow-cpu runs a tiny CPU version of its steps instead" >&2
  exit 1
fi

faster=e2e_faster_rcnn_R_50_FPN_1x
mask=e2e_mask_rcnn_R_50_FPN_1x
quick_faster=faster_rcnn_R_18_FPN_quick
quick_mask=mask_rcnn_R_18_FPN_quick
common=(--device "$device" --results "$results")
sweep_size=(--size 800x1333)
sweep_data=synthetic:8
if [[ "$kind" == host ]]; then
  faster=$quick_faster
  mask=$quick_mask
  SWEEP_ITERS=1
  SWEEP_WARMUP=0
  sweep_size=(--size 64x96)
  sweep_data=synthetic:2
  common+=(--size 64x96)
fi

start=$SECONDS
failed=()
step() { echo; echo "== accept [$((SECONDS - start)) s]: $*"; }
# run a step; a failure is reported and counted, and the next step runs
try() {
  if ! "$@"; then
    failed+=("${*:4:3}")
    echo "accept: step failed: $*" >&2
  fi
}

step "devices"
try "$py" -m benchmark devices
if [[ "$kind" == host ]]; then
  step "ops: left out of the CPU version (its 800x1333 cases take minutes on a few cores)"
else
  step "ops on $kind: kernel vs native"
  try "$py" -m benchmark ops --device "$device" --repeats "$OPS_REPEATS" --warmup 2
fi

for model in "$quick_faster" "$quick_mask"; do
  if [[ "$kind" == host ]]; then
    # the CPU version verifies random weights (near-tied scores: fp32 only), with no training
    step "verify $model (random weights) against the CPU"
    try "$py" -m benchmark verify --model "$model" --batch 2 --data synthetic:8 "${common[@]}"
    continue
  fi
  ckpt="$results/ckpt/${model}_${QUICK_ITERS}it.pth"
  step "train $model for $QUICK_ITERS iterations, then verify it against the CPU"
  try "$py" -m benchmark train --model "$model" --iters "$QUICK_ITERS" --warmup 0 --batch 4 \
    --data synthetic:256 --save-ckpt "$ckpt" "${common[@]}"
  precisions=(fp32)
  [[ "$model" != "$quick_faster" ]] || precisions+=(bf16)
  for precision in "${precisions[@]}"; do
    try "$py" -m benchmark verify --model "$model" --ckpt "$ckpt" --precision "$precision" \
      --batch 2 --data synthetic:8 "${common[@]}"
  done
done

swept=("$faster" "$mask")
[[ "$kind" != host ]] || swept=("$faster")  # the CPU version sweeps one model: a test's time
for model in "${swept[@]}"; do
  step "sweep $model: fp32, tf32, fp16, bf16, training and inference, one card"
  try "$py" -m benchmark sweep --model "$model" --mode both --precisions fp32,tf32,fp16,bf16 \
    --cards 1 --batches 1 --data "$sweep_data" "${sweep_size[@]}" --iters "$SWEEP_ITERS" \
    --warmup "$SWEEP_WARMUP" --device "$device" --results "$results"
done

if ((cards > 1)); then
  for model in "$faster" "$mask"; do
    step "sweep $model: training on all $cards cards (fp32; one card above)"
    try "$py" -m benchmark sweep --model "$model" --mode train --precisions fp32 \
      --cards "$cards" --data "$sweep_data" "${sweep_size[@]}" --iters "$SWEEP_ITERS" \
      --warmup "$SWEEP_WARMUP" --device "$device" --results "$results"
  done
else
  step "one card only: no multi-card step"
fi

step "report"
try "$py" -m benchmark report --results "$results" --out "$results"
echo "accept: $((SECONDS - start)) s in all"
if ((${#failed[@]})); then
  echo "accept: ${#failed[@]} step(s) failed: ${failed[*]}" >&2
  exit 1
fi
