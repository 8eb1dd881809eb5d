#!/usr/bin/env bash
# One click: measure Libra R-CNN training
# on the device present and record it (results/).
#   bash benchmark/LibraRCNN_Train.sh [--device D] [--precision P] [--cards N|all] [--batch B]
#       [--data SPEC] [--ckpt FILE] [--model NAME] [other 'python -m benchmark train' arguments]
# Model: on an accelerator libra_faster_rcnn_R_50_FPN_1x,
#        on a CPU quick/libra_faster_rcnn_R_18_FPN_quick.
# Defaults and passthrough: benchmark/common.sh.
set -euo pipefail
# shellcheck source=benchmark/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_run LibraRCNN_Train.sh train \
  libra_faster_rcnn_R_50_FPN_1x libra_faster_rcnn_R_18_FPN_quick "$@"
