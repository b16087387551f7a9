"""End to end on SmolLM2: traffic with a long system prompt goes through `serve --upstream` to a teacher on
loopback, `ingrain nightly` bakes the prompt into the default model and promotes it, and the promoted model,
asked without the prompt, answers unseen messages in the teacher's format with the teacher's label."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from memory import Store
from tests.support.endpoint import ask_all
from tests.support.fake_upstream import TRIAGE_SYSTEM_PROMPT, FakeUpstream, triage_category, triage_messages
from tools.serve.config import ServeConfig
from tools.serve.server import bound_port, running_server

pytestmark = [pytest.mark.real_model, pytest.mark.slow]

TEACHER = "teacher-large"
SHAPE = re.compile(r"^Category: (repair|rental|sales|other)\nUrgency: (high|normal)\nReply: \S.*$")
TRAFFIC = 90
NIGHTLY_MINUTES = 9


def score(replies: list[str], messages: list[str]) -> tuple[int, int]:
    """(replies in the teacher's three-line format, replies whose category is the teacher's)."""
    shaped = [bool(SHAPE.match(r.strip())) for r in replies]
    labels = [re.match(r"\s*Category: (\w+)", r) for r in replies]
    right = [bool(m and m.group(1) == triage_category(text)) for m, text in zip(labels, messages, strict=True)]
    return sum(shaped), sum(right)


def test_nightly_bakes_an_upstream_system_prompt_into_the_default_model(workspace, smollm2_dir) -> None:
    seen = triage_messages(TRAFFIC, seed=11)
    unseen = [text for text, _ in triage_messages(40, seed=907) if text not in {t for t, _ in seen}][:10]
    with FakeUpstream() as teacher, running_server(ServeConfig(port=0, upstream=teacher.url), workspace) as server:
        base_url = f"http://127.0.0.1:{bound_port(server)}"
        relayed = ask_all(base_url, [t for t, _ in seen], model=TEACHER, system=TRIAGE_SYSTEM_PROMPT)
        base_replies = ask_all(base_url, unseen)
    assert all(SHAPE.match(r) for r in relayed)  # the teacher answered through the proxy
    assert score(base_replies, unseen)[0] == 0  # the default model does not know the format

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "agent.cli", "nightly", "--budget-minutes", str(NIGHTLY_MINUTES),
                           "--json"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "INGRAIN_HOME": str(workspace.root)})
    wall = time.monotonic() - started
    nightly = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr[-3000:]
    [baked] = [p for p in nightly["patterns"] if p["action"] == "ran"]
    assert baked["goal"].startswith("Bake the") and baked["promoted"], baked
    assert wall <= 600, f"the nightly took {wall:.0f} s"

    with running_server(ServeConfig(port=0), workspace) as server:
        replies = ask_all(f"http://127.0.0.1:{bound_port(server)}", unseen)  # no system prompt
    shaped, right = score(replies, unseen)
    with Store.open(workspace) as store:
        production = store.production_model()
        route = store.db["routes"].get(baked["pattern_id"])
    print(f"\nnightly {wall:.0f} s; unseen without the prompt: format {shaped}/10, label {right}/10 "
          f"(base {score(base_replies, unseen)}); agreement on the hold-out {route['agreement']}; "
          f"production {production['name']}", file=sys.stderr)
    assert production["name"] == nightly["production_after"] == baked["model"]
    assert shaped >= 8, replies
    assert right >= 6, replies
