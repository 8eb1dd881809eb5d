#!/usr/bin/env bash
# Install steps shared by every image (docker/Dockerfile.*), run from the project root:
#
#   install_project.sh deps <requirements file>   third-party packages (a layer of their own,
#                                                 so code changes do not reinstall them)
#   install_project.sh project                    the project itself: pip install --no-deps -e .
#
# A requirements file that does not pin torch (requirements-vendor.txt) must leave the image's
# torch alone: vendor plug-ins (torch_mlu, torch_npu) and NGC builds only work with the torch they
# ship, so the step fails if pip replaced it.
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

torch_version() {
    "$PYTHON" - <<'PY'
from importlib import metadata

try:
    print(metadata.version("torch"))
except metadata.PackageNotFoundError:
    print("none")
PY
}

install_deps() {
    local requirements=$1 before after
    if [ ! -f "$requirements" ]; then
        echo "install_project.sh: requirements file '$requirements' not found in $(pwd)" >&2
        exit 1
    fi
    before=$(torch_version)
    pip_install -r "$requirements"
    after=$(torch_version)
    echo "install_project.sh: installed $requirements (torch: $before -> $after)"
    if ! grep -Eq '^[[:space:]]*torch[[:space:]]*([=<>~!]|$)' "$requirements" \
        && [ "$before" != none ] && [ "$before" != "$after" ]; then
        echo "install_project.sh: installing $requirements replaced the image's torch" \
            "($before -> $after); the image's plug-in needs its own torch." >&2
        exit 1
    fi
}

install_project() {
    pip_install --no-deps -e .
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
