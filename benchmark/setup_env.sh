#!/usr/bin/env bash
# Make the project's Python environment: a virtualenv (default .venv in the project root) with
# the pinned requirements and the project installed editable. Idempotent: it reinstalls only
# when a requirements file changed. Prints nothing on stdout but the python to use.
#   bash benchmark/setup_env.sh [--test]     # --test adds requirements-test.txt
# RCNN_PYTHON=/path/to/python skips the venv and uses that interpreter as it is (vendor images
# that bring their own torch): nothing is installed, not even the project, when it already
# imports from this checkout (as env.sh and the images arrange). RCNN_VENV=DIR puts the venv
# elsewhere; RCNN_REQUIREMENTS=FILE builds it from FILE instead of requirements.txt (CI's
# oldest-torch lane uses requirements-oldest.txt).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

# Whether `python` imports rcnn and benchmark from this checkout (not from another clone).
imports_this_checkout() {
  "$1" - "$root" >/dev/null 2>&1 <<'PY'
import os, sys
import benchmark, rcnn
root = os.path.realpath(sys.argv[1])
homes = (os.path.dirname(os.path.dirname(os.path.realpath(m.__file__))) for m in (benchmark, rcnn))
sys.exit(0 if list(homes) == [root, os.path.join(root, "models")] else 1)
PY
}

if [[ -n "${RCNN_PYTHON:-}" ]]; then
  if ! imports_this_checkout "$RCNN_PYTHON"; then
    "$RCNN_PYTHON" -m pip install -q --no-deps -e "$root" >&2
  fi
  echo "$RCNN_PYTHON"
  exit 0
fi

venv="${RCNN_VENV:-$root/.venv}"
py="$venv/bin/python"
reqs=("${RCNN_REQUIREMENTS:-$root/requirements.txt}")
(( want_test )) && reqs+=("$root/requirements-test.txt")
stamp="$venv/.rcnn-installed"
# requirements files may include one another (-r): hash them all
digest="$(cat "${reqs[@]}" "$root"/requirements*.txt "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"

if [[ ! -x "$py" ]]; then
  echo "setup: creating virtual environment $venv" >&2
  python3 -m venv "$venv" >&2
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]]; then
  echo "setup: installing ${reqs[*]##*/} into $venv (first run takes a few minutes)" >&2
  args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  "$py" -m pip install -q --disable-pip-version-check "${args[@]}" >&2
  echo "$digest" > "$stamp"
fi
# a venv kept between clones (CI's cache) may point at another checkout: point it at this one
if ! imports_this_checkout "$py"; then
  "$py" -m pip install -q --disable-pip-version-check --no-deps -e "$root" >&2
fi
echo "$py"
