"""Acceptance: traffic through the real endpoint (tiny model) and, for the repeated prompt, through it to a
teacher on loopback (`serve --upstream`), feedback through POST /v1/feedback, then `ingrain patterns --json`
as a separate process finds the repeated prompt, the request cluster and the bad answers with their exact
counts, and `ingrain nightly --dry-run` proposes the goals they make."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import httpx
import pytest

from memory.store import Store
from tests.support.fake_upstream import FakeUpstream
from tools.serve.config import ServeConfig
from tools.serve.server import bound_port, running_server

TRIAGE = ("You are a bicycle shop triage assistant for Velo Rapido. Read the customer's message, decide whether "
          "the bike needs a repair, a part order or a simple adjustment, and answer in three lines: the category, "
          "the likely cause, and what the customer should bring to the shop. Stay polite and never promise a price.")
PROBLEMS = ["my chain slips when I pedal hard", "the rear brake squeaks in the rain", "a flat tyre again",
            "the gears skip on hills", "the saddle keeps sliding down", "the front wheel wobbles",
            "the bell fell off", "pedals creak at every turn", "the kickstand is bent", "lights flicker at night"]
WHEN = ["since Monday", "after a long ride", "on my commute", "this morning", "since the last service", "again"]
THINGS = ["the cat", "my neighbour", "the train", "our manager", "the small dog", "my sister"]
VERBS = ["is late", "sleeps on the sofa", "loves pizza", "went to the market", "reads a book"]


@pytest.mark.slow
def test_ingrain_patterns_finds_the_prompt_the_cluster_and_the_bad_answers(workspace, tiny_model_dir) -> None:
    with Store.open(workspace) as store:
        store.register_model("tiny-v1", base=str(tiny_model_dir), kind="full", path=str(tiny_model_dir))
        store.promote("tiny-v1")
    asks = [f"{p} {w}" for p, w in itertools.islice(itertools.product(PROBLEMS, WHEN), 60)]
    sentences = [f"translate this sentence to French: {t} {v}" for t, v in
                 itertools.islice(itertools.product(THINGS, VERBS), 30)]
    with FakeUpstream() as teacher, \
            running_server(ServeConfig(port=0, log_content="full", upstream=teacher.url), workspace) as server, \
            httpx.Client(base_url=f"http://127.0.0.1:{bound_port(server)}", timeout=60) as http:

        def chat(messages: list[dict[str, str]], model: str = "tiny-v1") -> str:
            reply = http.post("/v1/chat/completions", json={"model": model, "messages": messages,
                                                            "max_tokens": 4, "temperature": 0})
            assert reply.status_code == 200, reply.text
            return reply.json()["id"]

        # The repeated prompt goes to the bigger model through the proxy: its answers are the teacher's.
        triage_ids = [chat([{"role": "system", "content": TRIAGE}, {"role": "user", "content": ask}],
                           model="teacher-large") for ask in asks]
        translate_ids = [chat([{"role": "user", "content": s}]) for s in sentences]
        corrected = {rid: f"Correct French for request {i}." for i, rid in enumerate(translate_ids[:10])}
        for rid, correction in corrected.items():
            sent = http.post("/v1/feedback", json={"response_id": rid, "rating": -1, "correction": correction})
            assert sent.status_code == 200, sent.text

    mined = subprocess.run([sys.executable, "-m", "agent.cli", "patterns", "--json"], capture_output=True,
                           text=True, timeout=300, stdin=subprocess.DEVNULL,
                           env={**os.environ, "INGRAIN_HOME": str(workspace.root)})
    assert mined.returncode == 0, mined.stderr[-3000:]
    document = json.loads(mined.stdout)
    by_kind = {kind: [p for p in document["patterns"] if p["kind"] == kind]
               for kind in ("system_prompt", "cluster", "negative_feedback")}

    [prompt] = by_kind["system_prompt"]
    assert prompt["count"] == 60 and sorted(prompt["spec"]["request_ids"]) == sorted(triage_ids)
    assert prompt["label"] == "bicycle shop triage" and prompt["spec"]["strip_system"] is True
    assert prompt["spec"]["teacher"] == "upstream" and prompt["spec"]["upstream_model"] == "teacher-large"
    assert prompt["state"] == "new" and prompt["score"] >= prompt["threshold"] and "60 times" in prompt["goal"]

    [translate] = [p for p in by_kind["cluster"] if "translate" in p["label"]]
    assert translate["count"] == 30 and sorted(translate["spec"]["request_ids"]) == sorted(translate_ids)
    assert translate["goal"] and translate["score"] >= translate["threshold"]
    assert all(p["goal"] is None for p in by_kind["cluster"] if p is not translate)  # the triage requests

    [negative] = by_kind["negative_feedback"]
    assert negative["count"] == 10 and negative["data"]["corrections"] == corrected
    assert negative["goal"] and negative["score"] >= negative["threshold"]

    summary = document["summary"]
    assert summary["rows_used"] == 90 and summary["embedder"] == "wordllama" and summary["actionable"] == 3

    # The nightly would bake the prompt (60 teacher answers); the translation requests are too few to train
    # yet, and the corrected ones are among them, so their goal rides along with the cluster's.
    dry = subprocess.run([sys.executable, "-m", "agent.cli", "nightly", "--dry-run", "--json"], capture_output=True,
                         text=True, timeout=300, stdin=subprocess.DEVNULL,
                         env={**os.environ, "INGRAIN_HOME": str(workspace.root)})
    assert dry.returncode == 0, dry.stderr[-3000:]
    proposals = {p["pattern_id"]: p for p in json.loads(dry.stdout)["patterns"]}
    assert proposals[prompt["id"]]["action"] == "would_run" and proposals[prompt["id"]]["goal"] == prompt["goal"]
    assert proposals[prompt["id"]]["data"]["sources"] == {"upstream": 60}
    assert proposals[translate["id"]]["action"] == "too_small"
    assert proposals[translate["id"]]["data"]["sources"] == {"local": 20, "correction": 10}
    assert proposals[negative["id"]]["action"] == "covered" and translate["id"] in proposals[negative["id"]]["reason"]
