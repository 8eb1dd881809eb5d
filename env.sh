# shellcheck shell=bash
# rcnn-bench environment. Usage, from any directory, in bash or zsh:
#
#   source /path/to/rcnn-bench/env.sh
#
# Sets RCNN_ROOT (this file's folder), puts models/ and the root on PYTHONPATH (once, however
# often it is sourced), sets DATASET_DIR, CHECKPOINT_DIR and RESULTS_DIR unless they are already
# set, activates the project's virtual environment if there is one ($RCNN_VENV, else .venv/ or
# venv/ in the root), and prints what it set (RCNN_ENV_QUIET=1 silences that). The
# visible-devices variables (CUDA_VISIBLE_DEVICES, MLU_VISIBLE_DEVICES, ASCEND_RT_VISIBLE_DEVICES)
# are left as they are and shown.
# Safe under `set -u`; never exits the calling shell.

if [ -n "${BASH_SOURCE:-}" ]; then
    _rcnn_env_file=${BASH_SOURCE[0]}
elif [ -n "${ZSH_VERSION:-}" ]; then
    # zsh-only expansion (the file being sourced); eval keeps bash's parser away from it.
    eval '_rcnn_env_file=${(%):-%x}'
else
    echo "env.sh: source it from bash or zsh" >&2
    return 1
fi

RCNN_ROOT=$(CDPATH='' cd -- "$(dirname -- "$_rcnn_env_file")" && pwd -P) || return 1
export RCNN_ROOT

_rcnn_prepend_pythonpath() {
    case ":${PYTHONPATH:-}:" in
        *":$1:"*) ;;
        *) PYTHONPATH="$1${PYTHONPATH:+:$PYTHONPATH}" ;;
    esac
}
_rcnn_prepend_pythonpath "$RCNN_ROOT"
_rcnn_prepend_pythonpath "$RCNN_ROOT/models"
export PYTHONPATH
unset -f _rcnn_prepend_pythonpath

export DATASET_DIR="${DATASET_DIR:-$RCNN_ROOT/datasets}"
export CHECKPOINT_DIR="${CHECKPOINT_DIR:-$RCNN_ROOT/checkpoints}"
export RESULTS_DIR="${RESULTS_DIR:-$RCNN_ROOT/results}"

_rcnn_venv=""
# RCNN_VENV is where benchmark/setup_env.sh was told to make it (default .venv). With RCNN_PYTHON
# (the images set it) that interpreter is the environment: no venv is activated over it.
for _rcnn_candidate in ${RCNN_VENV:+"$RCNN_VENV"} "$RCNN_ROOT/.venv" "$RCNN_ROOT/venv"; do
    if [ -n "${RCNN_PYTHON:-}" ]; then break; fi
    if [ -f "$_rcnn_candidate/bin/activate" ]; then
        _rcnn_venv=$_rcnn_candidate
        break
    fi
done
if [ -n "$_rcnn_venv" ] && [ "${VIRTUAL_ENV:-}" != "$_rcnn_venv" ]; then
    # Older activate scripts read unset variables; lift nounset only around them.
    _rcnn_nounset=0
    case $- in *u*) _rcnn_nounset=1; set +u ;; esac
    # shellcheck source=/dev/null
    . "$_rcnn_venv/bin/activate"
    if [ "$_rcnn_nounset" = 1 ]; then set -u; fi
fi

if [ "${RCNN_ENV_QUIET:-0}" != 1 ]; then
    echo "rcnn-bench environment (env.sh):"
    echo "  RCNN_ROOT      $RCNN_ROOT"
    echo "  PYTHONPATH     $PYTHONPATH"
    echo "  DATASET_DIR    $DATASET_DIR"
    echo "  CHECKPOINT_DIR $CHECKPOINT_DIR"
    echo "  RESULTS_DIR    $RESULTS_DIR"
    echo "  venv           ${_rcnn_venv:-none (using ${RCNN_PYTHON:-$(command -v python3 || echo 'no python3')})}"
    for _rcnn_var in CUDA_VISIBLE_DEVICES MLU_VISIBLE_DEVICES ASCEND_RT_VISIBLE_DEVICES; do
        # Indirect lookup that bash and zsh share; the names are this fixed list.
        _rcnn_isset="" _rcnn_value=""
        eval "_rcnn_isset=\${$_rcnn_var+yes} _rcnn_value=\${$_rcnn_var-}"
        if [ -n "$_rcnn_isset" ]; then echo "  $_rcnn_var=$_rcnn_value"; fi
    done
fi
unset _rcnn_env_file _rcnn_venv _rcnn_candidate _rcnn_nounset _rcnn_var _rcnn_isset _rcnn_value
