#!/usr/bin/env bash
# One click: measure Faster R-CNN inference (and its COCO AP)
# on the device present and record it (results/).
#   bash benchmark/FasterRCNN_Infer.sh [--device D] [--precision P] [--cards N|all] [--batch B]
#       [--data SPEC] [--ckpt FILE] [--model NAME] [other 'python -m benchmark infer' arguments]
# Model: on an accelerator e2e_faster_rcnn_R_50_FPN_1x,
#        on a CPU quick/faster_rcnn_R_18_FPN_quick.
# Defaults and passthrough: benchmark/common.sh.
set -euo pipefail
# shellcheck source=benchmark/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_run FasterRCNN_Infer.sh infer \
  e2e_faster_rcnn_R_50_FPN_1x faster_rcnn_R_18_FPN_quick "$@"
