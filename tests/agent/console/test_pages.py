"""The console's pages over a real store: live fragments, escaping, new goals, a busy store, the serve mount."""

from __future__ import annotations

import sqlite3
import threading
import time

from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agent.cli import app as cli_app
from agent.console.worker import with_retry
from memory import Store, StoreError
from memory.usage import log_requests
from tests.agent.console.conftest import csrf_of, run_row, wait_for

SCRIPT = "<script>window.__pwned = 1</script>"


def test_runs_page_and_its_live_fragment_answer_204_while_nothing_changed(client) -> None:
    with Store.open() as store:
        run_id = store.create_run("first goal", "interactive")
    page = client.get("/console/")
    assert f'href="/console/runs/{run_id}"' in page.text and "first goal" in page.text
    key = page.text.split('data-key="', 1)[1].split('"', 1)[0]
    assert client.get("/console/fragments/runs", params={"key": key}).status_code == 204
    with Store.open() as store:
        store.update_run(run_id, status="failed", error="disk full")
    changed = client.get("/console/fragments/runs", params={"key": key})
    assert changed.status_code == 200 and "failed" in changed.text and "disk full" in changed.text


def test_model_and_user_text_is_escaped_everywhere(client) -> None:
    with Store.open() as store:
        run_id = store.create_run(f"goal {SCRIPT}", "interactive")
        store.record_event(run_id, "node_start", node="evaluate", name="evaluate")
        store.record_event(run_id, "tool_call", node="evaluate", name="generate", data={"result": SCRIPT})
        store.add_lesson("failure", f"lesson {SCRIPT}", run_id=run_id)
        log_requests(store, [{"id": "r1", "ts": time.time(), "status": "ok", "model": "m", "latency_s": 0.2,
                              "messages": [{"role": "user", "content": SCRIPT}], "response": SCRIPT}])
    for path in ("/console/", f"/console/runs/{run_id}", f"/console/runs/{run_id}/live", "/console/usage",
                 "/console/lessons"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert SCRIPT not in page.text, path
        assert "&lt;script&gt;window.__pwned" in page.text, path
        if path.endswith("/live"):
            continue  # a fragment, not a page
        title = page.text.split("<title>", 1)[1].split("</title>", 1)[0]
        assert "<" not in title and page.text.count("<title>") == 1, path  # the page's content is in its body


def test_a_run_page_shows_the_graph_the_trace_and_the_report_parts(client, pause_run) -> None:
    run_id = pause_run()
    page = client.get(f"/console/runs/{run_id}")
    assert page.status_code == 200
    assert 'class="node waiting gate"' in page.text and ">\n    plan_gate</li>" in page.text
    assert 'class="node done"' in page.text  # parse_goal and plan ran
    assert "tool " in page.text and "decision " in page.text  # the trace tree: tool calls and decisions
    assert 'id="part-plan"' in page.text and "Sweep grid" in page.text  # the report's plan part
    assert 'id="answer-gate"' in page.text


def test_new_goal_starts_a_run_like_ingrain_run_and_bad_input_keeps_the_text(client, style_data,
                                                                           tiny_model_dir) -> None:
    form = client.get("/console/new")
    token = csrf_of(form.text)
    empty = client.post("/console/new", data={"csrf": token, "goal": "   "})
    assert empty.status_code == 400 and "The goal is empty" in empty.text
    budget = client.post("/console/new", data={"csrf": token, "goal": "keep me", "budget": "soon"})
    assert budget.status_code == 400 and "keep me</textarea>" in budget.text
    with Store.open() as store:
        assert store.runs() == []
    started = client.post("/console/new", data={
        "csrf": token, "goal": "Write notes in the house style, lr 1e-2, 2 trials", "data": str(style_data),
        "base": str(tiny_model_dir), "policy": "interactive", "budget": "20"}, follow_redirects=False)
    assert started.status_code == 303
    run_id = int(started.headers["location"].rsplit("/", 1)[1])
    run = wait_for(lambda: (r := run_row(run_id))["status"] == "paused" and r, what="the plan gate")
    assert run["gate"] == "plan" and run["spec"]["input"]["data_paths"] == [str(style_data)]
    listed = CliRunner().invoke(cli_app, ["runs", "--json"])  # the CLI sees the run the console started
    assert f'"id": {run_id}' in listed.stdout


def test_pages_load_while_a_training_process_holds_the_store_and_writes_wait_their_turn(client,
                                                                                     two_versions) -> None:
    with Store.open() as store:
        path = store.path
    token = csrf_of(client.get("/console/models/v1/promote").text)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # what a writer in another process looks like to us
    try:
        started = time.monotonic()
        for page in ("/console/", "/console/models", "/console/usage", "/console/lessons"):
            assert client.get(page).status_code == 200
        assert time.monotonic() - started < 5  # reads are not blocked by the writer (WAL)
        releaser = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
        releaser.start()
        promoted = client.post("/console/models/v1/promote", data={"csrf": token}, follow_redirects=False)
        releaser.join()
    finally:
        if holder.in_transaction:
            holder.execute("COMMIT")
        holder.close()
    assert promoted.status_code == 303
    with Store.open() as store:
        assert store.production_model()["name"] == "v1"


def test_a_write_that_finds_the_store_locked_is_tried_again_then_reported() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "written"

    assert with_retry(flaky, wait=0.01) == "written" and len(calls) == 3

    def stuck() -> None:
        raise sqlite3.OperationalError("database is locked")

    try:
        with_retry(stuck, attempts=2, wait=0.01)
    except StoreError as exc:
        assert "nothing was changed" in str(exc)
    else:
        raise AssertionError("a store that stays busy must be reported")


def test_ingrain_serve_mounts_the_same_console_under_slash_console(monkeypatch) -> None:
    import tools.serve.server as serve_server

    endpoint = FastAPI()

    @endpoint.get("/v1/models")
    def models() -> dict:
        return {"data": []}

    class Server:
        config = type("Config", (), {"app": endpoint})()

        def run(self) -> None:
            pass

    monkeypatch.setattr(serve_server, "build_server", lambda config: Server())
    result = CliRunner().invoke(cli_app, ["serve", "--port", "0"])
    assert result.exit_code == 0, result.output
    client = TestClient(endpoint, base_url="http://127.0.0.1")
    assert client.get("/v1/models").json() == {"data": []}
    page = client.get("/console/")
    assert page.status_code == 200 and 'href="/console/models"' in page.text
