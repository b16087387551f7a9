#!/usr/bin/env bash
# Set up (if needed) and run ingrain's whole test suite, real-model tests included.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
VENV="${INGRAIN_VENV:-.venv}"
printf '\033[1;34m[test]\033[0m %s\n' "ruff check"
"$VENV/bin/ruff" check .
printf '\033[1;34m[test]\033[0m %s\n' "pytest (unit tests on a tiny model, then real SmolLM2 tests)"
set +e
"$VENV/bin/python" -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass." >&2
  exit 1
fi
exit "$code"
