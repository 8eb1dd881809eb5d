#!/usr/bin/env bash
# Make the project's Python environment: a virtualenv (default .venv in the project root) with
# the pinned requirements and the project installed editable. Idempotent: it reinstalls only
# when a requirements file changed. Prints nothing on stdout but the python to use.
#   bash benchmark/setup_env.sh [--test]     # --test adds requirements-test.txt
# RCNN_PYTHON=/path/to/python skips the venv and uses that interpreter as it is (vendor images
# that bring their own torch); RCNN_VENV=DIR puts the venv elsewhere.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

if [[ -n "${RCNN_PYTHON:-}" ]]; then
  "$RCNN_PYTHON" -m pip install -q --no-deps -e "$root" >&2
  echo "$RCNN_PYTHON"
  exit 0
fi

venv="${RCNN_VENV:-$root/.venv}"
py="$venv/bin/python"
reqs=("$root/requirements.txt")
(( want_test )) && reqs+=("$root/requirements-test.txt")
stamp="$venv/.rcnn-installed"
digest="$(cat "${reqs[@]}" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"

if [[ ! -x "$py" ]]; then
  echo "setup: creating virtual environment $venv" >&2
  python3 -m venv "$venv" >&2
fi
if [[ ! -f "$stamp" ]] || ! grep -qx "$digest" "$stamp"; then
  echo "setup: installing pinned requirements into $venv (first run takes a few minutes)" >&2
  args=()
  for r in "${reqs[@]}"; do args+=(-r "$r"); done
  "$py" -m pip install -q --disable-pip-version-check "${args[@]}" >&2
  "$py" -m pip install -q --disable-pip-version-check --no-deps -e "$root" >&2
  echo "$digest" >> "$stamp"
fi
echo "$py"
