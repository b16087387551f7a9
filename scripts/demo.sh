#!/usr/bin/env bash
# The main job: set up (if needed), then run a real goal through the whole graph on the embedded default model
# (SmolLM2-135M-Instruct): 80 help-desk answers in a strict three-line house style (written to
# $INGRAIN_HOME/demo/helpdesk.jsonl), a 10-minute budget, auto policy. It deploys the result if the verdict
# passes, serves it on 127.0.0.1 and asks it three questions it never saw.
# Usage: scripts/demo.sh            (INGRAIN_HOME defaults to ./.ingrain; INGRAIN_DEMO_GOAL runs your own goal)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
VENV="${INGRAIN_VENV:-.venv}"
export INGRAIN_HOME="${INGRAIN_HOME:-$PWD/.ingrain}"
INGRAIN="$VENV/bin/ingrain"
DATA="$INGRAIN_HOME/demo/helpdesk.jsonl"
GOAL="${INGRAIN_DEMO_GOAL:-Make the default model answer in the style of the examples in $DATA within 10 minutes}"
say() { printf '\033[1;34m[demo]\033[0m %s\n' "$*"; }

mkdir -p "$(dirname "$DATA")"
"$VENV/bin/python" -c 'import json, sys; from evals.learn_tasks import rigid_format_examples
open(sys.argv[1], "w").writelines(json.dumps(r) + "\n" for r in rigid_format_examples(80, seed=0))' "$DATA"
say "data: $DATA (80 examples; every answer is 'Answer: ...', 'Why: ...', then a fixed sign-off line)"

say "goal: $GOAL"
say "policy auto: no questions at the plan and winner gates; deploys only if evaluation passes"
set +e
if [ -n "${INGRAIN_DEMO_GOAL:-}" ]; then DATA_ARGS=(); else DATA_ARGS=(--data "$DATA"); fi
"$INGRAIN" run "$GOAL" "${DATA_ARGS[@]}" --policy auto
code=$?
set -e
RUN=$("$INGRAIN" runs --json | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["id"])')
if [ "$code" -ne 0 ]; then
  say "run $RUN ended with exit code $code; see: $INGRAIN trace $RUN"
  exit "$code"
fi
say "report: $("$INGRAIN" report "$RUN")"
VERDICT=$("$INGRAIN" runs --json | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["verdict"])')
if [ "$VERDICT" != "pass" ]; then
  say "the verdict did not pass, so nothing was deployed: the endpoint below serves the base model (see the report)"
fi
"$INGRAIN" models

PORT="${INGRAIN_DEMO_PORT:-8765}"
say "serving the production version on http://127.0.0.1:$PORT for three questions it never saw"
"$INGRAIN" serve --host 127.0.0.1 --port "$PORT" > "$INGRAIN_HOME/demo-serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
"$VENV/bin/python" - "$PORT" <<'PY'
import sys
from openai import OpenAI

from tools.serve.server import wait_until_healthy

port = sys.argv[1]
wait_until_healthy(f"http://127.0.0.1:{port}", timeout_s=120)
client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="local")
model = client.models.list().data[0].id
for question in ["Should I prune an apple tree in midsummer?", "Can I water succulents every evening?",
                 "Is it a good idea to move a bonsai outside in winter?"]:
    reply = client.chat.completions.create(model=model, max_tokens=80, temperature=0,
                                           messages=[{"role": "user", "content": question}])
    print(f"model:    {model}\nquestion: {question}\nanswer:\n{reply.choices[0].message.content}\n")
PY
say "done. Serve it yourself with: $INGRAIN serve   (then point any OpenAI client at http://127.0.0.1:8000/v1)"
