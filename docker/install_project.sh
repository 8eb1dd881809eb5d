#!/usr/bin/env bash
# Install steps shared by every image (docker/Dockerfile.*), run from the project root:
#
#   install_project.sh deps <requirements file>   third-party packages (a layer of their own,
#                                                 so code changes do not reinstall them)
#   install_project.sh project                    the project itself: pip install --no-deps -e .,
#                                                 and $RCNN_PYTHON, a launcher of this python
#
# What the image brings is kept: torch, torchvision, numpy and the plug-ins (torch_mlu, torch_npu,
# and any name in RCNN_KEEP) that are installed are pinned at their versions in a constraints file,
# so pip installs only what is missing, and the step fails if any of them changed anyway. Vendor
# plug-ins and NGC builds only work with the torch they ship, and a torch built against NumPy 1.x
# (2.1-2.3) breaks under NumPy 2. A requirements file that pins torch (requirements.txt, the cpu
# image) is installed as it is.
set -euo pipefail

usage() {
    echo "usage: $0 deps <requirements file> | $0 project" >&2
    exit 2
}

PYTHON=$(command -v python3 || command -v python || true)
if [ -z "$PYTHON" ]; then
    echo "install_project.sh: no python3 or python in the base image" >&2
    exit 1
fi

pip_install() {
    "$PYTHON" -m pip install --no-cache-dir --disable-pip-version-check "$@"
}

# "name==version" for each kept package the image has installed, one a line
kept_versions() {
    # shellcheck disable=SC2086  # RCNN_KEEP is a space-separated list of names
    "$PYTHON" - ${RCNN_KEEP:-} <<'PY'
import sys
from importlib import metadata

for name in ["torch", "torchvision", "numpy", "torch_mlu", "torch_npu", *sys.argv[1:]]:
    try:
        print(f"{name}=={metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
PY
}

install_deps() {
    local requirements=$1 before after constraints kept
    if [ ! -f "$requirements" ]; then
        echo "install_project.sh: requirements file '$requirements' not found in $(pwd)" >&2
        exit 1
    fi
    if grep -Eq '^[[:space:]]*torch[[:space:]]*([=<>~!]|$)' "$requirements"; then
        pip_install -r "$requirements"  # it brings its own torch: nothing of the image to keep
        return
    fi
    before=$(kept_versions)
    kept=$(echo "$before" | tr '\n' ' ')
    constraints=$(mktemp)
    echo "$before" >"$constraints"
    local args=(-r "$requirements" -c "$constraints")
    # an image's own pip constraints (NGC's PIP_CONSTRAINT, space-separated) still apply
    read -r -a image_constraints <<<"${PIP_CONSTRAINT:-}"
    for extra in "${image_constraints[@]}"; do args+=(-c "$extra"); done
    echo "install_project.sh: keeping the image's $kept"
    pip_install "${args[@]}" || {
        echo "install_project.sh: $requirements cannot be installed without changing the" \
            "image's torch, torchvision, numpy or plug-in (kept: $kept)" >&2
        exit 1
    }
    rm -f "$constraints"
    after=$(kept_versions)
    if [ "$before" != "$after" ]; then
        echo "install_project.sh: installing $requirements changed the image's packages:" \
            "$kept-> $(echo "$after" | tr '\n' ' ')" >&2
        exit 1
    fi
}

install_project() {
    pip_install --no-deps -e .
    # RCNN_PYTHON (set in every Dockerfile) runs this python: setup_env.sh then uses it as it is
    if [ -n "${RCNN_PYTHON:-}" ] && [ "$RCNN_PYTHON" != "$PYTHON" ]; then
        mkdir -p "$(dirname "$RCNN_PYTHON")"
        printf '#!/bin/sh\nexec %s "$@"\n' "$PYTHON" >"$RCNN_PYTHON"
        chmod +x "$RCNN_PYTHON"
    fi
    # The one-click scripts and the docs call `python`; some vendor images only have python3.
    if ! command -v python >/dev/null; then
        ln -s "$PYTHON" /usr/local/bin/python
    fi
}

case "${1:-}" in
    deps) [ "$#" -eq 2 ] || usage; install_deps "$2" ;;
    project) [ "$#" -eq 1 ] || usage; install_project ;;
    *) usage ;;
esac
