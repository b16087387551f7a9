"""`ingrain patterns` as a real process: one JSON document, a clear error for a bad --since, a readable table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from memory.routes import set_route
from memory.store import Store
from memory.usage import log_requests

INGRAIN = [sys.executable, "-m", "agent.cli"]
PROMPT = ("You are a bicycle shop triage assistant. Decide whether the bike needs a repair, a part order or an "
          "adjustment, then answer in three lines: the category, the likely cause, and what to bring to the shop. "
          "Keep it polite and short.")


def ingrain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INGRAIN, *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "200"})


def seed(workspace) -> None:
    """25 requests with one long system prompt, two days ago, and one proxy route."""
    now = time.time()
    with Store.open(workspace) as store:
        log_requests(store, [{"id": f"r{i}", "ts": now - 2 * 86400 + i, "status": "ok", "model": "tiny-v1",
                              "system_prompt": PROMPT, "system_hash": "bike",
                              "messages": [{"role": "user", "content": f"my chain slips ({i})"}]}
                             for i in range(25)])
        set_route(store, "system:abc", match={"system_hash": "bike"}, local_model="tiny-v2", agreement=0.9,
                  threshold=0.8, upstream_model="gpt-big", samples=40)


def test_json_is_one_document_with_patterns_routes_skipped_and_summary(workspace) -> None:
    seed(workspace)
    result = ingrain("patterns", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert set(document) == {"patterns", "routes", "skipped", "summary"}
    [prompt, asks] = document["patterns"]  # the requests under the prompt also cluster, with no goal of their own
    assert (asks["kind"], asks["goal"], asks["data"]["covered_by"]) == ("cluster", None, [prompt["id"]])
    assert (prompt["kind"], prompt["count"], prompt["label"], prompt["state"]) == \
        ("system_prompt", 25, "bicycle shop triage", "new")
    assert prompt["spec"]["strip_system"] is True and len(prompt["spec"]["request_ids"]) == 25
    assert [r["pattern_id"] for r in document["routes"]] == ["system:abc"]
    assert document["summary"]["rows_used"] == 25 and document["summary"]["actionable"] == 1
    assert document["skipped"]["not_ok"] == 0

    recent = json.loads(ingrain("patterns", "--json", "--since", time.strftime("%Y-%m-%d")).stdout)
    assert recent["patterns"] == [] and recent["summary"]["message"].startswith("Nothing to do: 0 logged")

    ignored = json.loads(ingrain("patterns", "--json", "--ignore", prompt["id"]).stdout)
    assert ignored["pattern"]["state"] == "ignored"
    again = json.loads(ingrain("patterns", "--json", "--since", "2000-01-01T00:00").stdout)
    assert again["patterns"][0]["state"] == "ignored" and again["summary"]["actionable"] == 0
    assert json.loads(ingrain("patterns", "--json", "--reset", prompt["id"]).stdout)["pattern"]["state"] == "new"


def test_a_bad_since_is_a_clear_error(workspace) -> None:
    result = ingrain("patterns", "--since", "last tuesday", "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = json.loads(result.stdout)["error"]
    assert "--since 'last tuesday' is not a date" in error["message"] and "YYYY-MM-DD" in error["message"]
    plain = ingrain("patterns", "--since", "2025-13-01")
    assert plain.returncode == 1 and "is not a date" in plain.stderr and not plain.stdout
    unknown = ingrain("patterns", "--ignore", "system:nope")
    assert unknown.returncode == 1 and "No pattern 'system:nope'" in unknown.stderr
    both = ingrain("patterns", "--ignore", "system:a", "--reset", "system:b")
    assert both.returncode == 1 and "give one of them per call" in both.stderr


def test_human_output_shows_patterns_routes_and_notes(workspace) -> None:
    seed(workspace)
    with Store.open(workspace) as store:
        log_requests(store, [{"id": "bad", "ts": time.time(), "status": "error", "model": "tiny-v1"}])
    result = ingrain("patterns")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bicycle shop triage" in result.stdout and "system_prompt" in result.stdout
    assert "25/20" in result.stdout and "Bake the 'bicycle shop triage' system prompt" in result.stdout
    assert "proxy routes" in result.stdout and "tiny-v2" in result.stdout and "0.90" in result.stdout
    assert "1 of 2 patterns are new and over their threshold" in result.stderr and "1 not ok" in result.stderr

    empty_home = workspace.root.parent / "empty-home"
    empty = subprocess.run([*INGRAIN, "patterns"], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "INGRAIN_HOME": str(empty_home)})
    assert empty.returncode == 0 and "Nothing to do: 0 logged requests" in empty.stderr
