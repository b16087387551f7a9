"""The compiled graph on the tiny model, through every path: approve, reject, failing verdict, errors, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent import runner
from agent.errors import AgentError
from memory import Store

GOAL = "Write notes in the house style, lr 1e-2, 2 trials"


def node_counts(run_id: int) -> dict[str, int]:
    store = Store.open()
    try:
        events = store.events(run_id, kinds=["node_start"])
    finally:
        store.close()
    counts: dict[str, int] = {}
    for event in events:
        counts[event["name"]] = counts.get(event["name"], 0) + 1
    return counts


def start(style_data: Path, tiny_model_dir: Path, policy: str, goal: str = GOAL, **kw) -> runner.Outcome:
    return runner.start(goal, data_paths=[str(style_data)], base=str(tiny_model_dir), policy=policy,
                        budget_minutes=kw.pop("budget_minutes", 20), **kw)


def test_auto_policy_runs_to_a_deployed_version_with_a_report(style_data, tiny_model_dir) -> None:
    outcome = start(style_data, tiny_model_dir, "auto")
    assert outcome.exit_code == 0, outcome.message
    assert outcome.verdict == "pass", outcome.message
    store = Store.open()
    try:
        production = store.production_model()
        run = store.run(outcome.run_id)
        lessons = store.lessons()
    finally:
        store.close()
    assert production is not None and production["name"] == outcome.model == run["model"]
    assert Path(production["path"], "config.json").exists()  # merged weights, ready to serve
    assert Path(production["path"]).parent.joinpath("model.gguf").is_file()  # the copy llama.cpp serves
    assert run["status"] == "finished" and run["verdict"] == "pass"
    assert {"sweep", "timing"} <= {lesson["topic"] for lesson in lessons}
    report = Path(outcome.report).read_text()
    for section in ("Plan", "Sweep", "Training", "Evaluation", "Style profile", "Before / after", "Deployment"):
        assert section in report
    assert "data:image/png;base64" in report  # loss curves embedded: the page stands alone
    counts = node_counts(outcome.run_id)
    for node in ("parse_goal", "plan", "gather", "build_data", "sweep", "train", "evaluate", "deploy", "reflect"):
        assert counts.get(node) == 1, (node, counts)


def test_interactive_pauses_at_each_gate_and_approve_continues(style_data, tiny_model_dir) -> None:
    outcome = start(style_data, tiny_model_dir, "interactive")
    assert (outcome.exit_code, outcome.gate) == (3, "plan")
    assert f"ingrain approve {outcome.run_id}" in outcome.message
    assert outcome.payload["plan"]["estimate"]["train_steps"] > 0
    outcome = runner.approve(outcome.run_id)
    assert (outcome.exit_code, outcome.gate) == (3, "winner")
    trials = [t["name"] for t in outcome.payload["sweep"]["trials"]]
    other = next(name for name in trials if name != outcome.payload["sweep"]["winner"])
    with pytest.raises(AgentError, match="not a trial"):
        runner.approve(outcome.run_id, choice="Z")
    outcome = runner.approve(outcome.run_id, choice=other)
    assert outcome.exit_code in (0, 3)
    if outcome.exit_code == 3:  # the verdict passed: the deploy gate asks
        assert outcome.gate == "deploy"
        outcome = runner.approve(outcome.run_id)
    assert outcome.exit_code == 0
    store = Store.open()
    try:
        answers = store.events(outcome.run_id, kinds=["answer"])
        train_calls = [e for e in store.events(outcome.run_id, kinds=["node_end"]) if e["name"] == "train"]
    finally:
        store.close()
    assert answers[1]["data"]["choice"] == other
    assert len(train_calls) == 1
    with pytest.raises(AgentError, match="not waiting at a gate"):
        runner.approve(outcome.run_id)  # approving again: the run is finished


def test_reject_plan_with_a_reason_replans_then_approve_runs_it(style_data, tiny_model_dir) -> None:
    outcome = start(style_data, tiny_model_dir, "interactive")
    assert len(outcome.payload["plan"]["grid"]) == 2
    outcome = runner.reject(outcome.run_id, reason="use 3 trials and lr 3e-3")
    assert (outcome.exit_code, outcome.gate) == (3, "plan")
    grid = outcome.payload["plan"]["grid"]
    assert len(grid) == 3 and grid[0]["lr"] == 3e-3
    outcome = runner.approve(outcome.run_id)
    assert (outcome.exit_code, outcome.gate) == (3, "winner")
    assert outcome.payload["sweep"]["trials"][0]["overrides"]["lr"] == 3e-3  # the re-plan was used
    outcome = runner.reject(outcome.run_id, reason="not today")
    assert outcome.exit_code == 3 and outcome.gate == "plan"  # a rejected winner goes back to plan
    outcome = runner.reject(outcome.run_id, reason="stop here", stop=True)
    assert outcome.exit_code == 0 and "plan rejected" in outcome.message
    counts = node_counts(outcome.run_id)
    assert counts["plan"] == 3 and counts["sweep"] == 1 and "train" not in counts


def test_reject_stop_at_the_winner_gate_ends_the_run_without_training(style_data, tiny_model_dir) -> None:
    outcome = runner.approve(start(style_data, tiny_model_dir, "interactive").run_id)
    assert (outcome.exit_code, outcome.gate) == (3, "winner")
    outcome = runner.reject(outcome.run_id, reason="not worth training", stop=True)
    assert outcome.exit_code == 0 and outcome.status == "finished", outcome.message
    assert "sweep winner rejected: not worth training" in outcome.message
    counts = node_counts(outcome.run_id)
    assert counts["plan"] == 1 and counts["sweep"] == 1 and counts["reflect"] == 1  # not back to plan
    assert "train" not in counts and "deploy" not in counts
    store = Store.open()
    try:
        run = store.run(outcome.run_id)
        answer = store.events(outcome.run_id, kinds=["answer"])[-1]
        versions = store.models()
    finally:
        store.close()
    assert (run["status"], run["gate"], run["model"]) == ("finished", None, None)
    assert answer["name"] == "winner" and answer["data"]["stop"] is True
    assert versions == []
    assert Path(outcome.report).exists()
    with pytest.raises(AgentError, match="not waiting at a gate"):
        runner.approve(outcome.run_id)


def test_failing_evaluation_goes_to_reflect_without_deploying(style_data, tiny_model_dir) -> None:
    outcome = start(style_data, tiny_model_dir, "auto",
                    goal=GOAL + " and be at least 99% better than the base")
    assert outcome.exit_code == 0, outcome.message
    assert outcome.verdict == "fail"
    store = Store.open()
    try:
        versions = store.models()
        failures = store.lessons("failure")
    finally:
        store.close()
    assert [(v["status"], v["kind"], v["verdict"]) for v in versions] == [("candidate", "adapter", None)]
    assert "deploy" not in node_counts(outcome.run_id)
    assert failures and "evaluation failed" in failures[0]["text"]
    assert Path(outcome.report).exists()


def test_a_failing_node_stops_the_run_resumably(style_data, tiny_model_dir, tmp_path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    outcome = runner.start(GOAL, data_paths=[str(broken)], base=str(tiny_model_dir), policy="auto",
                           budget_minutes=20)
    assert outcome.exit_code == 1
    assert "line 2" in outcome.message and f"ingrain resume {outcome.run_id}" in outcome.message
    shutil.copy(style_data, broken)  # the person fixes the file
    resumed = runner.resume(outcome.run_id)
    assert resumed.exit_code == 0, resumed.message
    counts = node_counts(outcome.run_id)
    assert counts["parse_goal"] == counts["plan"] == counts["gather"] == 1  # finished nodes are not redone
    assert counts["build_data"] == 2


@pytest.mark.parametrize(("goal", "kwargs", "expected"), [
    ("   ", {}, "goal is empty"),
    ("Write like ./no-such-wiki", {"data_paths": []}, "does not exist"),
    ("Tune smollm2-135m and also Qwen/Qwen2.5-0.5B-Instruct on my notes", {}, "base model"),
])
def test_goals_it_cannot_act_on_fail_with_what_to_add(goal, kwargs, expected, style_data, tmp_path,
                                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = {"data_paths": [str(style_data)], **kwargs}
    try:
        outcome = runner.start(goal, policy="auto", **args)
    except AgentError as exc:
        message = str(exc)
    else:
        assert outcome.exit_code == 1
        message = outcome.message
    assert expected.lower() in message.lower()


def test_budget_too_small_stops_at_plan(style_data, tiny_model_dir) -> None:
    """A timing lesson from a slow machine (the plan reads it instead of calibrating) makes 1 minute too short."""
    import re

    from tools.train.estimate import detect_hardware

    with Store.open() as store:
        store.add_lesson("timing", "a slow machine", data={
            "base": str(tiny_model_dir), "hardware": detect_hardware().key(), "train_tokens_per_s": 20.0,
            "generate_tokens_per_s": 5.0, "run_overhead_s": 30.0, "corrections": {}})
    outcome = start(style_data, tiny_model_dir, "auto", budget_minutes=1)
    assert outcome.exit_code == 1 and "too small to train even one epoch" in outcome.message, outcome.message
    assert "gather" not in node_counts(outcome.run_id)
    minimum = float(re.search(r"--budget-minutes (\d+(?:\.\d+)?) or more", outcome.message).group(1))
    assert minimum > 1
    # The figure is true: with that budget the same plan goes ahead (paused at its gate, interactive).
    enough = start(style_data, tiny_model_dir, "interactive", budget_minutes=minimum)
    assert enough.exit_code == 3 and enough.gate == "plan", enough.message


def test_resume_refuses_a_run_another_live_process_drives(style_data, tiny_model_dir) -> None:
    import subprocess
    import sys

    outcome = start(style_data, tiny_model_dir, "interactive")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store = Store.open()
        store.update_run(outcome.run_id, status="running", owner_pid=holder.pid)
        store.close()
        with pytest.raises(AgentError, match="already being continued"):
            runner.resume(outcome.run_id)
    finally:
        holder.kill()
        holder.wait()


def test_corrupted_checkpoint_is_a_clear_error_and_other_runs_continue(style_data, tiny_model_dir,
                                                                       workspace) -> None:
    first = start(style_data, tiny_model_dir, "interactive")
    second = start(style_data, tiny_model_dir, "interactive")
    checkpoint = workspace.run_dir(first.run_id) / "checkpoints.db"
    for path in checkpoint.parent.glob("checkpoints.db*"):
        path.unlink()
    checkpoint.write_bytes(b"\x00garbage" * 4096)
    with pytest.raises(Exception, match="damaged"):
        runner.approve(first.run_id)
    assert runner.reject(second.run_id, reason="stop", stop=True).exit_code == 0


def test_runs_and_trace_json_documents(style_data, tiny_model_dir) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    outcome = start(style_data, tiny_model_dir, "interactive")
    cli = CliRunner()
    runs = json.loads(cli.invoke(app, ["runs", "--json"]).stdout)
    assert runs["runs"][0]["id"] == outcome.run_id and runs["runs"][0]["status"] == "paused"
    trace = json.loads(cli.invoke(app, ["trace", str(outcome.run_id), "--json"]).stdout)
    kinds = {e["kind"] for e in trace["events"]}
    assert {"node_start", "node_end", "tool_call", "decision", "gate"} <= kinds
    assert all({"node", "kind", "ts"} <= set(e) for e in trace["events"])


def test_with_an_llm_configured_reflect_also_writes_a_prose_lesson(style_data, tiny_model_dir,
                                                                   monkeypatch) -> None:
    from agent.prompts import REFLECT_SYSTEM
    from tests.support.fake_upstream import FakeUpstream

    prose = "Two trials at lr 1e-2 learned the bullets quickly; next time one trial is enough."
    with FakeUpstream(answer=lambda messages: prose) as llm:
        monkeypatch.setenv("OPENAI_BASE_URL", llm.url)
        outcome = start(style_data, tiny_model_dir, "auto")
        asked = [r["body"]["messages"] for r in llm.chat_requests()]
    assert outcome.exit_code == 0, outcome.message
    with Store.open() as store:
        reflections = store.lessons("reflection")
        events = store.events(outcome.run_id, kinds=["llm"])
    assert [r["text"] for r in reflections] == [prose] and reflections[0]["run_id"] == outcome.run_id
    assert any(m[0]["content"] == REFLECT_SYSTEM and outcome.verdict in m[1]["content"] for m in asked)
    assert any(e["name"] == "reflection" for e in events)
