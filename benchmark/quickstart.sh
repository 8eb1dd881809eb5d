#!/usr/bin/env bash
# The one-click benchmark on a fresh machine, on the device present, with synthetic data:
#   1. set up the Python environment (benchmark/setup_env.sh) and list the devices
#   2. a short sweep, training and inference: every precision on one card (the ones this
#      device cannot run are recorded as skipped), then training on 2, 4 and 8 cards (on a CPU
#      a card is a process: more than its cores are recorded as skipped)
#   3. train the quick Faster R-CNN for TRAIN_ITERS iterations (the synthetic set is made on
#      first use), then measure inference with those weights, which records a real COCO AP
#   4. print the report rebuilt from every record in $RESULTS_DIR (default results/)
#   bash benchmark/quickstart.sh [--device D] [--smoke]
# --smoke (or QUICK=1): the same steps, tiny (64x96 images, 1-3 iterations, an inference-only
# sweep, no multi-card step): what the tests run.
# The sweep's model follows the one-click scripts: the full R-50-FPN config on an accelerator,
# the R-18 quick config on a CPU.
set -euo pipefail

TRAIN_ITERS="${TRAIN_ITERS:-400}"  # quick-config iterations that reach a useful AP on synthetic
TRAIN_IMAGES=256                   # synthetic training images for that run (64 test images)
SWEEP_ITERS=10                     # measured iterations of each sweep cell, after 2 of warm-up

# shellcheck source=benchmark/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

device=auto
smoke="${QUICK:-0}"
while (($#)); do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

quick=faster_rcnn_R_18_FPN_quick
common=(--device "$device")
sweep_args=(--iters "$SWEEP_ITERS" --warmup 2)
train_data="synthetic:$TRAIN_IMAGES"
test_data=synthetic
if [[ "$smoke" == 1 ]]; then
  TRAIN_ITERS=3
  common+=(--size 64x96)
  sweep_args=(--iters 1 --warmup 1)
  train_data=synthetic:4
  test_data=synthetic:4
fi

start=$SECONDS
step() { echo; echo "== quickstart [$((SECONDS - start)) s]: $*"; }

step "environment"
bench_python
py=$RCNN_BENCH_PYTHON
[[ "$smoke" == 1 ]] || "$py" -m benchmark devices --no-preflight
model="$(bench_default_model "$device" e2e_faster_rcnn_R_50_FPN_1x "$quick")"
ckpt="$RESULTS_DIR/quickstart/${quick}_${TRAIN_ITERS}it.pth"

if [[ "$smoke" == 1 ]]; then
  step "sweep: $model, inference in fp32 and tf32 on one card"
  "$py" -m benchmark sweep --model "$model" --mode infer --precisions fp32,tf32 --cards 1 \
    --batches 2 --data "$test_data" "${common[@]}" "${sweep_args[@]}"
else
  step "sweep: $model, every precision on one card, training and inference"
  "$py" -m benchmark sweep --model "$model" --mode both --precisions fp32,tf32,fp16,bf16 \
    --cards 1 --batches 1,2 --data "$test_data" "${common[@]}" "${sweep_args[@]}"
  step "sweep: $model, training on 2, 4 and 8 cards (fp32)"
  "$py" -m benchmark sweep --model "$model" --mode train --precisions fp32 --cards 2,4,8 \
    --data "$test_data" "${common[@]}" "${sweep_args[@]}"
fi

step "train $quick for $TRAIN_ITERS iterations -> $ckpt"
"$py" -m benchmark train --model "$quick" --iters "$TRAIN_ITERS" --warmup 0 \
  --data "$train_data" --save-ckpt "$ckpt" "${common[@]}"

step "inference with the trained weights (COCO AP on the synthetic test set)"
"$py" -m benchmark infer --model "$quick" --ckpt "$ckpt" --batch 2 --data "$test_data" \
  "${common[@]}"

step "report"
"$py" -m benchmark report
echo "quickstart: finished in $((SECONDS - start)) s; tables in $RESULTS_DIR/REPORT.md"
