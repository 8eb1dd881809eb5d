#!/usr/bin/env bash
# Start the rcnn-bench container of a backend with its device flags and mounts.
# Run with --help for usage; docker/README.md has the walk-through per vendor.
set -euo pipefail

BACKENDS="cuda mlu npu cpu"
CONTAINER_ROOT=/workspace

SYNOPSIS="usage: run_docker.sh [options] <cuda|mlu|npu|cpu> [image] [-- command ...]"

usage() {
    cat <<EOF
$SYNOPSIS

Starts the backend's image (default rcnn-bench:<backend>) with its devices, --ipc=host, the
dataset/checkpoint/results folders of env.sh mounted under $CONTAINER_ROOT/, and a shell or the
given command, e.g.
  run_docker.sh cuda -- bash benchmark/FasterRCNN_Train.sh --precision fp16

options:
  --build          build the image from docker/Dockerfile.<backend> first
                   (base image: \$RCNN_BASE_IMAGE if set, else the Dockerfile's default)
  --privileged     run the container privileged (off unless asked)
  --shm-size SIZE  /dev/shm size (default \$RCNN_SHM_SIZE or 16g)
  --name NAME      container name
  --dry-run        print the docker command(s), one line each, instead of running them
  -h, --help       this text

Devices: every card of the backend goes into the container; the host's visible-devices
variable (CUDA_VISIBLE_DEVICES, MLU_VISIBLE_DEVICES, ASCEND_RT_VISIBLE_DEVICES) is passed
through unchanged and picks cards with the host's numbering. Device nodes and driver files are
looked up under \$RCNN_HOST_ROOT (default: /), which tests point at a simulated host.
EOF
}

die() {
    echo "run_docker.sh: $*" >&2
    exit 2
}

usage_error() {
    echo "run_docker.sh: $*" >&2
    echo "$SYNOPSIS   (--help for more)" >&2
    exit 2
}

# One shell-quoted line that can be copy-pasted back into a shell.
quote_command() {
    local arg quoted=()
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
            quoted+=("$arg")
        else
            quoted+=("'${arg//\'/\'\\\'\'}'")
        fi
    done
    echo "${quoted[*]}"
}

# --- arguments -----------------------------------------------------------------------------
build=0 privileged=0 dry_run=0 name=""
shm_size=${RCNN_SHM_SIZE:-16g}
positional=() command=()
while [ "$#" -gt 0 ]; do
    case $1 in
        --build) build=1 ;;
        --privileged) privileged=1 ;;
        --dry-run) dry_run=1 ;;
        --shm-size) [ "$#" -ge 2 ] || usage_error "--shm-size needs a value (e.g. 32g)"; shm_size=$2; shift ;;
        --shm-size=*) shm_size=${1#*=} ;;
        --name) [ "$#" -ge 2 ] || usage_error "--name needs a value"; name=$2; shift ;;
        --name=*) name=${1#*=} ;;
        -h | --help) usage; exit 0 ;;
        --) shift; command=("$@"); break ;;
        -*) usage_error "unknown option '$1'" ;;
        *) positional+=("$1") ;;
    esac
    shift
done

if [ "${#positional[@]}" -eq 0 ]; then
    usage_error "missing backend (one of: $BACKENDS)"
fi
if [ "${#positional[@]}" -gt 2 ]; then
    usage_error "too many arguments: ${positional[*]} (put the command after --)"
fi
backend=${positional[0]}
case " $BACKENDS " in
    *" $backend "*) ;;
    *) usage_error "unknown backend '$backend' (one of: $BACKENDS)" ;;
esac
image=${positional[1]:-rcnn-bench:$backend}
[ -n "$shm_size" ] || die "--shm-size must not be empty"

ROOT=$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
HOST_ROOT=${RCNN_HOST_ROOT:-}
HOST_ROOT=${HOST_ROOT%/}
# shellcheck source=/dev/null
RCNN_ENV_QUIET=1 source "$ROOT/env.sh"

# --- devices -------------------------------------------------------------------------------
device_args=()

# --device for the host node /dev/<name> (under RCNN_HOST_ROOT), at /dev/<name> inside.
add_device() {
    local host_path="$HOST_ROOT/dev/$1"
    if [ "$host_path" = "/dev/$1" ]; then
        device_args+=(--device "/dev/$1")
    else
        device_args+=(--device "$host_path:/dev/$1")
    fi
}

# Read-only bind mount of a host driver file or folder at the same path inside.
add_driver_mount() {
    device_args+=(-v "$HOST_ROOT$1:$1:ro")
}

# The <prefix>N nodes present under /dev, in card order (davinci2 before davinci10).
card_nodes() {
    local prefix=$1 node base
    for node in "$HOST_ROOT/dev/$prefix"[0-9]*; do
        base=${node##*/}
        if [ -e "$node" ] && [[ $base =~ ^${prefix}[0-9]+$ ]]; then
            echo "${base#"$prefix"} $base"
        fi
    done | sort -n | cut -d' ' -f2
}

# The visible-devices variable must name cards that exist: indices below the card count.
check_visible() {
    local variable=$1 count=$2 value index indices
    value=${!variable-}
    [ -n "$value" ] || return 0
    IFS=, read -r -a indices <<< "$value"
    for index in "${indices[@]}"; do
        if ! [[ $index =~ ^[0-9]+$ ]] || [ "$index" -ge "$count" ]; then
            die "$variable=$value names card '$index', but this host has $count card(s) (0..$((count - 1)))"
        fi
    done
}

require_node() {
    [ -e "$HOST_ROOT/dev/$1" ] || die "$HOST_ROOT/dev/$1 not found: $2"
}

visible_var=""
case $backend in
    cuda)
        visible_var=CUDA_VISIBLE_DEVICES
        device_args+=(--gpus all)
        ;;
    mlu)
        visible_var=MLU_VISIBLE_DEVICES
        require_node cambricon_ctl "is the Cambricon MLU driver installed and loaded?"
        mapfile -t cards < <(card_nodes cambricon_dev)
        [ "${#cards[@]}" -gt 0 ] || die "no $HOST_ROOT/dev/cambricon_devN card found (check with cnmon)"
        add_device cambricon_ctl
        for node in "${cards[@]}"; do add_device "$node"; done
        # Inter-process nodes, present on multi-card MLU hosts (used by CNCL between cards).
        mapfile -t ipcm < <(card_nodes cambricon_ipcm)
        for node in "${ipcm[@]}"; do add_device "$node"; done
        if [ -e "$HOST_ROOT/usr/bin/cnmon" ]; then
            add_driver_mount /usr/bin/cnmon
        fi
        check_visible "$visible_var" "${#cards[@]}"
        ;;
    npu)
        visible_var=ASCEND_RT_VISIBLE_DEVICES
        for node in davinci_manager devmm_svm hisi_hdc; do
            require_node "$node" "is the Ascend NPU driver installed and loaded?"
        done
        mapfile -t cards < <(card_nodes davinci)
        [ "${#cards[@]}" -gt 0 ] || die "no $HOST_ROOT/dev/davinciN card found (check with npu-smi info)"
        for node in "${cards[@]}" davinci_manager devmm_svm hisi_hdc; do add_device "$node"; done
        [ -d "$HOST_ROOT/usr/local/Ascend/driver" ] \
            || die "$HOST_ROOT/usr/local/Ascend/driver not found: the container needs the host's NPU driver"
        add_driver_mount /usr/local/Ascend/driver
        for path in /usr/local/dcmi /usr/local/bin/npu-smi /etc/ascend_install.info; do
            if [ -e "$HOST_ROOT$path" ]; then
                add_driver_mount "$path"
            else
                echo "run_docker.sh: $HOST_ROOT$path not found on this host; not mounted" >&2
            fi
        done
        check_visible "$visible_var" "${#cards[@]}"
        ;;
    cpu) ;;
esac

# --- the command ---------------------------------------------------------------------------
run=(docker run --rm)
if [ -t 0 ] && [ -t 1 ]; then
    run+=(-it)
else
    run+=(-i)
fi
[ -z "$name" ] || run+=(--name "$name")
[ "$privileged" = 0 ] || run+=(--privileged)
# --ipc=host gives the host's /dev/shm (DDP and data-loader workers share tensors through it);
# --shm-size is what /dev/shm gets if the IPC mode is changed to a private one.
run+=(--ipc=host --shm-size "$shm_size")
run+=("${device_args[@]}")
if [ -n "$visible_var" ] && [ -n "${!visible_var+set}" ]; then
    run+=(-e "$visible_var=${!visible_var}")
fi
# docker -v takes a relative source for a named volume, so host folders are made absolute.
host_dir() {
    local dir=${!1}
    [[ $dir == /* ]] || dir="$PWD/$dir"
    [[ $dir != *:* ]] || die "$1=$dir: docker cannot mount a path that contains ':'"
    echo "$dir"
}
dataset_dir=$(host_dir DATASET_DIR)
checkpoint_dir=$(host_dir CHECKPOINT_DIR)
results_dir=$(host_dir RESULTS_DIR)
run+=(
    -v "$dataset_dir:$CONTAINER_ROOT/datasets"
    -v "$checkpoint_dir:$CONTAINER_ROOT/checkpoints"
    -v "$results_dir:$CONTAINER_ROOT/results"
    -e "DATASET_DIR=$CONTAINER_ROOT/datasets"
    -e "CHECKPOINT_DIR=$CONTAINER_ROOT/checkpoints"
    -e "RESULTS_DIR=$CONTAINER_ROOT/results"
    "$image"
    "${command[@]}"
)

build_cmd=()
if [ "$build" = 1 ]; then
    git_commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
    build_cmd=(docker build -f "$ROOT/docker/Dockerfile.$backend" -t "$image"
        --build-arg "GIT_COMMIT=$git_commit")
    if [ -n "${RCNN_BASE_IMAGE:-}" ]; then
        build_cmd+=(--build-arg "BASE_IMAGE=$RCNN_BASE_IMAGE")
    fi
    build_cmd+=("$ROOT")
fi

if [ "$dry_run" = 1 ]; then
    [ "${#build_cmd[@]}" -eq 0 ] || quote_command "${build_cmd[@]}"
    quote_command "${run[@]}"
    exit 0
fi

command -v docker >/dev/null || die "docker not found on PATH"
[ "${#build_cmd[@]}" -eq 0 ] || "${build_cmd[@]}"
# Created here so that docker does not create them owned by root.
mkdir -p "$dataset_dir" "$checkpoint_dir" "$results_dir"
exec "${run[@]}"
