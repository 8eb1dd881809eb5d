#!/usr/bin/env bash
# Entrypoint of every rcnn-bench image: set up the vendor toolkit's environment (when the image
# names one), then the project's (env.sh), then run the given command (default: a shell).
#
#   RCNN_TOOLKIT_ENV  colon-separated scripts to source first, e.g. Ascend's CANN set_env.sh
#                     (Dockerfile.npu sets it); a missing one is reported, not fatal.
#
# The container layout (run_docker.sh mounts the host folders there) is the default for the
# data, checkpoint and results folders; values passed with `docker run -e` win.
# Vendor set_env scripts are not written for `set -eu`, so neither is on here.

rcnn_command=("$@")
if [ "${#rcnn_command[@]}" -eq 0 ]; then
    rcnn_command=(bash)
fi
set --  # sourced scripts see the caller's arguments; give them none

IFS=: read -r -a rcnn_toolkit_scripts <<< "${RCNN_TOOLKIT_ENV:-}"
for rcnn_script in "${rcnn_toolkit_scripts[@]}"; do
    if [ -f "$rcnn_script" ]; then
        # shellcheck source=/dev/null
        source "$rcnn_script"
    else
        echo "rcnn-bench: $rcnn_script not found; that toolkit's environment is not set" >&2
    fi
done

export DATASET_DIR="${DATASET_DIR:-/workspace/datasets}"
export CHECKPOINT_DIR="${CHECKPOINT_DIR:-/workspace/checkpoints}"
export RESULTS_DIR="${RESULTS_DIR:-/workspace/results}"
rcnn_env_sh="${RCNN_ROOT:-/workspace/rcnn-bench}/env.sh"
# shellcheck source=/dev/null
if ! RCNN_ENV_QUIET=1 source "$rcnn_env_sh"; then
    echo "rcnn-bench: sourcing $rcnn_env_sh failed" >&2
    exit 1
fi
exec "${rcnn_command[@]}"
