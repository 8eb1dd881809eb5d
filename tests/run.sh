#!/usr/bin/env bash
# The test command: set up the environment, lint, run the whole suite.
#   bash tests/run.sh [pytest args...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="$(bash benchmark/setup_env.sh --test)"
echo "== ruff" >&2
"$py" -m ruff check .
"$py" -m ruff format --check .
echo "== pytest" >&2
"$py" -m pytest --durations=15 "$@"
