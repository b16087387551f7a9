"""`ingrain nightly` on the tiny model: nothing to do, the lock, a dry run, promotion only of a better model,
and a nightly killed mid-run that leaves production alone and is picked up by the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import nightly
from memory import Store, usage
from memory.patterns import patterns
from tests.support.fake_upstream import TRIAGE_SYSTEM_PROMPT

ANSWER = "- noted\n- that is all"


def seed_log(workspace, count: int, *, start: int = 0) -> list[str]:
    """`count` upstream-answered requests that all send the triage system prompt, as the proxy logs them."""
    rows = [{"id": f"chatcmpl-{i}", "ts": time.time() - 3600 + i, "model": "teacher-large", "status": "ok",
             "source": "upstream", "system_prompt": TRIAGE_SYSTEM_PROMPT,
             "messages": [{"role": "user", "content": f"Summarize note {i} about the shop."}], "response": ANSWER,
             "prompt_tokens": 300, "completion_tokens": 7, "latency_s": 0.2}
            for i in range(start, start + count)]
    with Store.open(workspace) as store:
        usage.log_requests(store, rows)
    return [r["id"] for r in rows]


def cli(workspace, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INGRAIN_HOME": str(workspace.root)}
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture
def production(workspace, tiny_model_dir):
    """The tiny random model in production: nightly candidates are trained from it and judged against it."""
    with Store.open(workspace) as store:
        store.register_model("tiny-v1", base=str(tiny_model_dir), kind="full", path=str(tiny_model_dir))
        store.promote("tiny-v1")
    return "tiny-v1"


def test_an_empty_log_is_nothing_to_do_and_exit_0(workspace) -> None:
    done = cli(workspace, "nightly", "--json")
    document = json.loads(done.stdout)
    assert done.returncode == 0 and document["status"] == "nothing_to_do"
    assert "Nothing to do" in document["message"] and document["nightly_id"] is None


def test_a_second_nightly_exits_at_once_while_one_holds_the_lock(workspace) -> None:
    with nightly.nightly_lock(workspace) as held:
        assert held
        started = time.monotonic()
        done = cli(workspace, "nightly", "--json")
        assert time.monotonic() - started < 30
    document = json.loads(done.stdout)
    assert done.returncode == nightly.EXIT_LOCKED and document["status"] == "locked"
    assert f"process {os.getpid()}" in document["message"]
    assert cli(workspace, "nightly", "--json").returncode == 0  # released: the next one runs


def test_dry_run_proposes_the_goal_and_changes_nothing(workspace, production) -> None:
    seed_log(workspace, 60)
    done = cli(workspace, "nightly", "--dry-run", "--json")
    document = json.loads(done.stdout)
    assert done.returncode == 0 and document["status"] == "dry_run", done.stderr
    [proposal] = [p for p in document["patterns"] if p["action"] == "would_run"]
    assert proposal["goal"].startswith("Bake the") and "sent 60 times" in proposal["goal"]
    assert proposal["data"]["n_examples"] == 60 and proposal["data"]["sources"] == {"upstream": 60}
    with Store.open(workspace) as store:
        assert patterns(store) == [] and store.runs() == []
        assert store.production_model()["name"] == production


def test_a_better_candidate_is_promoted_and_one_that_is_not_leaves_production(workspace, production) -> None:
    seed_log(workspace, 60)
    first = nightly.run_nightly(budget_minutes=20)
    assert first.status == "finished", first.message
    [ran] = [p for p in first.patterns if p.action == "ran"]
    assert ran.promoted and ran.verdict == "pass", ran.reason
    assert first.production_before == production and first.production_after == ran.model != production
    assert "better than production tiny-v1" in ran.reason
    with Store.open(workspace) as store:
        nightly_row = store.run(first.nightly_id)
        child = store.run(ran.run_id)
        assert (nightly_row["kind"], nightly_row["status"], nightly_row["verdict"]) == ("nightly", "finished",
                                                                                       "promoted")
        assert child["parent_id"] == first.nightly_id and child["policy"] == "nightly"
        assert {p["state"] for p in patterns(store) if p["kind"] == "system_prompt"} == {"handled"}
        # Distilled from the upstream: a route starts from the promoted model's hold-out agreement.
        route = store.db["routes"].get(ran.pattern_id)
        assert route["local_model"] == ran.model and route["agreement"] == ran.route["agreement"]
        assert route["agreement"] == store.model(ran.model)["metrics"]["agreement"] > 0.5
        assert any(lesson["topic"] == "nightly" for lesson in store.lessons())
    assert Path(first.report).is_file()
    # Nothing grew: a handled pattern is not trained again.
    assert nightly.run_nightly(budget_minutes=20).status == "nothing_to_do"
    # It grows past 1.5x: trained again from production, which already answers perfectly, so the candidate
    # cannot beat it by the margin and production stays.
    seed_log(workspace, 30, start=60)
    second = nightly.run_nightly(budget_minutes=20)
    [again] = [p for p in second.patterns if p.action == "ran"]
    assert not again.promoted and second.production_after == first.production_after
    with Store.open(workspace) as store:
        assert store.production_model()["name"] == first.production_after
        assert store.run(second.nightly_id)["verdict"] == "kept"


def test_a_nightly_killed_mid_run_leaves_production_and_the_next_one_resumes(workspace, production) -> None:
    seed_log(workspace, 60)
    env = {**os.environ, "INGRAIN_HOME": str(workspace.root)}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "nightly", "--budget-minutes", "20"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    child = None
    while time.monotonic() < deadline and proc.poll() is None:
        with Store.open(workspace) as store:
            runs = [r for r in store.runs() if r["kind"] == "run"]
            if runs and any(e["name"] == "train" for e in store.events(runs[0]["id"], kinds=["node_start"])):
                child = runs[0]["id"]
                break
        time.sleep(0.5)
    assert child is not None, "the nightly's run never reached training"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    with Store.open(workspace) as store:
        assert store.production_model()["name"] == production
        assert store.run(child)["status"] == "running"  # as the kill left it
    after = nightly.run_nightly(budget_minutes=20)
    assert after.recovered and after.status == "finished", after.message
    [resumed] = after.patterns
    assert (resumed.action, resumed.run_id) == ("resumed", child) and resumed.promoted
    with Store.open(workspace) as store:
        assert store.run(after.recovered[0])["status"] == "failed"
        assert "interrupted" in store.run(after.recovered[0])["error"]
        assert store.production_model()["name"] == resumed.model
