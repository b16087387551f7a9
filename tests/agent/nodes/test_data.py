"""build_data on the tiny model: splitting the task data and asking the base model for replay are two tool calls."""

from __future__ import annotations

from pathlib import Path

from agent import runner
from memory import Store
from tools.data import read_jsonl


def test_build_data_splits_then_writes_replay_examples_as_two_named_tool_calls(style_data: Path,
                                                                                tiny_model_dir: Path) -> None:
    outcome = runner.start("Write notes in the house style, 1 trial", data_paths=[str(style_data)],
                           base=str(tiny_model_dir), policy="interactive", budget_minutes=20)
    assert outcome.gate == "plan", outcome.message
    outcome = runner.approve(outcome.run_id)
    assert outcome.gate == "winner", outcome.message
    store = Store.open()
    try:
        calls = [e for e in store.events(outcome.run_id, kinds=["tool_call"]) if e["node"] == "build_data"]
    finally:
        store.close()
    names = [call["name"] for call in calls]
    assert names.index("split_dataset") < names.index("replay_examples"), names
    split = calls[names.index("split_dataset")]["data"]
    replayed = calls[names.index("replay_examples")]["data"]
    assert split["result"]["n_train"] > 0 and "error" not in replayed
    assert replayed["args"]["n_train"] == split["result"]["n_train"]
    assert replayed["args"]["reply"].startswith(f"generate_replies({tiny_model_dir}")
    # The tiny random model may reply with nothing; the count must still match what was written.
    assert replayed["result"]["n_prompts"] > 0
    assert replayed["result"]["n_examples"] == len(read_jsonl(replayed["result"]["path"]))
