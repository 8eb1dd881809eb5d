# shellcheck shell=bash
# Shared by the one-click scripts (FasterRCNN_Train.sh, ...): argument parsing, the Python
# environment, and the defaults a new user gets with no arguments at all:
#   --device auto      the first accelerator present, else the CPU
#   --precision fp32
#   --cards all        every visible card (on a CPU host: one process using every core)
#   --data             coco:$DATASET_DIR/coco when that folder has annotations/, else synthetic
#   --model            the full R-50-FPN config on an accelerator, the R-18 quick config on a
#                      CPU (R-50-FPN at 800x1333 takes seconds per image on a few cores)
#   --batch            the harness's default (2 per card for training, 1 for inference)
#   --channels-last    the layout the device adapter runs the mode fastest in (on|off to choose)
# Everything else (--iters, --warmup, --size, --repeats, --results, KEY VALUE overrides, ...) is
# passed to `python -m benchmark train|infer` unchanged. Results go to $RESULTS_DIR, else
# results/ in the project. RCNN_BENCH_PYTHON names an interpreter already set up (the
# quickstart exports it so its steps set up once); otherwise benchmark/setup_env.sh runs.

bench_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RESULTS_DIR="${RESULTS_DIR:-$bench_root/results}"

# Set RCNN_BENCH_PYTHON to the project's interpreter, making the environment when needed.
bench_python() {
  if [[ -z "${RCNN_BENCH_PYTHON:-}" ]]; then
    RCNN_BENCH_PYTHON="$(bash "$bench_root/benchmark/setup_env.sh")"
    export RCNN_BENCH_PYTHON
  fi
}

# Print FULL when DEVICE resolves to an accelerator (or cannot be resolved: the run then says
# why, and records it), QUICK on a CPU host.
bench_default_model() {
  local device=$1 full=$2 quick=$3 kind
  kind="$("$RCNN_BENCH_PYTHON" - "$device" <<'PY'
import sys

from rcnn.device import DeviceError, resolve

try:
    adapter, _ = resolve(sys.argv[1])
except DeviceError:
    print("accelerator")
else:
    print("accelerator" if adapter.is_accelerator else "host")
PY
)"
  if [[ "$kind" == accelerator ]]; then echo "$full"; else echo "$quick"; fi
}

# The data a run uses when --data is not given.
bench_default_data() {
  local coco="${DATASET_DIR:-$bench_root/datasets}/coco"
  if [[ -d "$coco/annotations" ]]; then echo "coco:$coco"; else echo synthetic; fi
}

bench_usage() {
  local script=$1 mode=$2 full=$3 quick=$4
  cat <<EOF
usage: bash benchmark/$script [--device D] [--precision P] [--cards N|all] [--batch B]
                              [--data SPEC] [--ckpt FILE] [--model NAME] [benchmark $mode args]

Measures $mode of the model and writes a record under \$RESULTS_DIR (default results/).
Defaults: --device auto, --precision fp32, --cards all, --data synthetic (COCO when
\$DATASET_DIR/coco exists), --model $full on an accelerator or $quick on a CPU,
the layout the device runs $mode fastest in (--channels-last on|off to choose).
Other arguments go to 'python -m benchmark $mode' (see its --help), e.g. --iters 50 --warmup 10.
EOF
}

# bench_run SCRIPT MODE FULL_CONFIG QUICK_CONFIG [script arguments...]
bench_run() {
  local script=$1 mode=$2 full=$3 quick=$4
  shift 4
  local device=auto precision=fp32 cards=all batch="" data="" ckpt="" model=""
  local -a rest=()
  while (($#)); do
    case "$1" in
      -h | --help) bench_usage "$script" "$mode" "$full" "$quick"; return 0 ;;
      --device | --precision | --cards | --batch | --data | --ckpt | --model)
        if (($# < 2)); then
          echo "error: $1 needs a value" >&2
          return 2
        fi
        case "$1" in
          --device) device=$2 ;;
          --precision) precision=$2 ;;
          --cards) cards=$2 ;;
          --batch) batch=$2 ;;
          --data) data=$2 ;;
          --ckpt) ckpt=$2 ;;
          --model) model=$2 ;;
        esac
        shift 2
        ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  bench_python
  [[ -n "$data" ]] || data="$(bench_default_data)"
  [[ -n "$model" ]] || model="$(bench_default_model "$device" "$full" "$quick")"
  local -a cmd=("$RCNN_BENCH_PYTHON" -m benchmark "$mode" --model "$model" --device "$device"
    --precision "$precision" --cards "$cards" --data "$data")
  [[ -z "$batch" ]] || cmd+=(--batch "$batch")
  [[ -z "$ckpt" ]] || cmd+=(--ckpt "$ckpt")
  cmd+=("${rest[@]}")
  echo "+ ${cmd[*]}" >&2
  "${cmd[@]}"
}
