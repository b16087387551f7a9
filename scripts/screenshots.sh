#!/usr/bin/env bash
# Save a screenshot of every page of the web console at 1440 px wide, over a fresh workspace that the script
# fills itself (a run finished on the tiny model, runs paused at gates, synthetic endpoint traffic, a nightly).
# Usage: scripts/screenshots.sh [OUT_DIR]      (default .cache/console-screenshots/; about a minute on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
VENV="${INGRAIN_VENV:-.venv}"
exec "$VENV/bin/python" bench/console_screenshots.py "$@" 2> >(grep -v -E '^\S+ +[▶✓·→✎✗]|^step |Loading weights|warn' >&2)
