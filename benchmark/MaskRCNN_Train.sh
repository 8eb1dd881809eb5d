#!/usr/bin/env bash
# One click: measure Mask R-CNN training
# on the device present and record it (results/).
#   bash benchmark/MaskRCNN_Train.sh [--device D] [--precision P] [--cards N|all] [--batch B]
#       [--data SPEC] [--ckpt FILE] [--model NAME] [other 'python -m benchmark train' arguments]
# Model: on an accelerator e2e_mask_rcnn_R_50_FPN_1x,
#        on a CPU quick/mask_rcnn_R_18_FPN_quick.
# Defaults and passthrough: benchmark/common.sh.
set -euo pipefail
# shellcheck source=benchmark/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_run MaskRCNN_Train.sh train \
  e2e_mask_rcnn_R_50_FPN_1x mask_rcnn_R_18_FPN_quick "$@"
