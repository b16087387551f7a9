"""The registry, lessons, report and reject commands against a real store in the test's INGRAIN_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent import runner as run_driver
from agent.cli import app
from agent.errors import AgentError
from memory import Store, StoreError

cli = CliRunner()
WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}
GOAL = "Write notes in the house style, lr 1e-2, 2 trials"


def invoke(*args: str):
    return cli.invoke(app, list(args), env=WIDE)


@pytest.fixture
def two_versions(tmp_path: Path) -> list[str]:
    """Versions v1 and v2 registered in the workspace's store, each with a folder of its own."""
    with Store.open() as store:
        for name in ("v1", "v2"):
            (tmp_path / name).mkdir()
            store.register_model(name, base="tiny", kind="merged", path=str(tmp_path / name))
    return ["v1", "v2"]


def production() -> str | None:
    with Store.open() as store:
        row = store.production_model()
    return row["name"] if row else None


def test_lessons_text_and_json() -> None:
    empty = invoke("lessons")
    assert empty.exit_code == 0 and "No lessons yet" in empty.stdout
    assert json.loads(invoke("lessons", "--json").stdout) == {"lessons": []}
    with Store.open() as store:
        run_id = store.create_run("goal", "auto")
        store.add_lesson("sweep", "lr 1e-2 won on style", run_id=run_id, data={"lr": 1e-2})
        store.add_lesson("failure", "lr 1 diverged", run_id=run_id)
    text = invoke("lessons")
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert f"run {run_id} failure: lr 1 diverged" in lines[0] and f"run {run_id} sweep: lr 1e-2 won" in lines[1]
    document = json.loads(invoke("lessons", "--json").stdout)
    assert [(r["topic"], r["text"], r["data"]) for r in document["lessons"]] == [
        ("failure", "lr 1 diverged", None), ("sweep", "lr 1e-2 won on style", {"lr": 1e-2})]


def test_models_json_lists_the_registered_versions(two_versions) -> None:
    result = invoke("models", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)["models"]
    assert sorted((r["name"], r["status"], r["base"], r["kind"]) for r in rows) == [
        ("v1", "candidate", "tiny", "merged"), ("v2", "candidate", "tiny", "merged")]


def test_promote_then_rollback_change_production_in_the_store(two_versions) -> None:
    assert production() is None
    first = invoke("models", "promote", "v1")
    assert first.exit_code == 0 and "v1 is now in production" in first.stdout
    assert production() == "v1"
    assert invoke("models", "promote", "v2").exit_code == 0
    assert production() == "v2"
    back = invoke("models", "rollback")
    assert back.exit_code == 0 and "v1 is in production again" in back.stdout
    assert production() == "v1"
    with Store.open() as store:
        assert store.model("v2")["status"] == "candidate"


def test_promoting_an_unknown_version_or_rolling_back_with_no_history_changes_nothing(two_versions) -> None:
    unknown = invoke("models", "promote", "v9")
    assert unknown.exit_code == 1 and isinstance(unknown.exception, StoreError)
    assert "No model version 'v9'" in str(unknown.exception) and "v1" in str(unknown.exception)
    nothing = invoke("models", "rollback")
    assert isinstance(nothing.exception, StoreError) and "Nothing to roll back" in str(nothing.exception)
    assert production() is None


def test_reject_with_a_reason_sends_the_run_back_to_plan(style_data, tiny_model_dir) -> None:
    paused = run_driver.start(GOAL, data_paths=[str(style_data)], base=str(tiny_model_dir), policy="interactive",
                              budget_minutes=20)
    assert paused.gate == "plan" and len(paused.payload["plan"]["grid"]) == 2
    result = invoke("reject", str(paused.run_id), "--reason", "use 3 trials", "--json")
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    assert (document["status"], document["gate"]) == ("paused", "plan")
    assert len(document["payload"]["plan"]["grid"]) == 3  # the planner read the reason
    with Store.open() as store:
        run = store.run(paused.run_id)
        answers = store.events(paused.run_id, kinds=["answer"])
        planned = [e for e in store.events(paused.run_id, kinds=["node_start"]) if e["name"] == "plan"]
    assert (run["status"], run["gate"], run["owner_pid"]) == ("paused", "plan", None)
    assert [(a["name"], a["data"]["action"], a["data"]["reason"]) for a in answers] == [
        ("plan", "reject", "use 3 trials")]
    assert len(planned) == 2


def test_reject_needs_a_reason() -> None:
    with Store.open() as store:
        run_id = store.create_run("goal", "interactive")
    missing = invoke("reject", str(run_id))
    assert missing.exit_code == 2 and "--reason" in missing.output
    blank = invoke("reject", str(run_id), "--reason", " ")
    assert isinstance(blank.exception, AgentError) and "Say why" in str(blank.exception)


def test_report_prints_the_path_once_reflect_wrote_it(style_data, tiny_model_dir, workspace) -> None:
    paused = run_driver.start(GOAL, data_paths=[str(style_data)], base=str(tiny_model_dir), policy="interactive",
                              budget_minutes=20)
    missing = invoke("report", str(paused.run_id))
    assert isinstance(missing.exception, AgentError) and "has no report yet" in str(missing.exception)
    stopped = invoke("reject", str(paused.run_id), "--reason", "not now", "--stop")
    assert stopped.exit_code == 0, stopped.output
    result = invoke("report", str(paused.run_id))
    assert result.exit_code == 0
    path = Path(result.stdout.strip())
    assert path == workspace.run_dir(paused.run_id) / "report.html"
    assert path.is_file() and GOAL in path.read_text()


def test_report_of_a_run_that_does_not_exist() -> None:
    result = invoke("report", "42")
    assert isinstance(result.exception, StoreError) and "No run 42" in str(result.exception)
