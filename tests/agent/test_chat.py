"""`ingrain chat` without an LLM: goals start runs, questions about runs get answers from the store."""

from __future__ import annotations

from agent.chat import ChatSession
from memory import Store


def test_chat_without_llm_understands_goals_and_questions(style_data, tiny_model_dir) -> None:
    chat = ChatSession(ask=None)
    assert "without an LLM" in chat.mode
    assert "approve 7" in chat.handle("help")
    assert chat.handle("runs") == "No runs yet. Tell me a goal."
    reply = chat.handle(f"Make a model that writes notes like {style_data}, base {tiny_model_dir}, 20 minutes")
    assert "paused at the plan gate" in reply and "ingrain approve 1" in reply
    assert chat.handle("what is run 1 doing?").startswith("Run 1 is paused at the plan gate.")
    assert "parse_goal → plan" in chat.handle("status of run 1")
    assert chat.handle("why did config B win?") == "No sweep has finished yet."
    assert "run 1: paused at plan" in chat.handle("runs")
    assert "don't understand" in chat.handle("tell me a joke")
    assert "is not waiting at a gate" not in chat.handle("reject 1 not now")  # goes back to plan, pauses again
    store = Store.open()
    try:
        answers = store.events(1, kinds=["answer"])
    finally:
        store.close()
    assert answers[-1]["data"]["action"] == "reject"


def test_chat_explains_a_sweep_winner_from_the_trace(workspace) -> None:
    store = Store.open(workspace)
    try:
        run_id = store.create_run("g", "auto")
        store.record_event(run_id, "decision", node="sweep", name="winner B",
                           data={"reason": "lowest validation loss (1.2345)"})
    finally:
        store.close()
    chat = ChatSession(ask=None)
    assert chat.handle("why did config B win?") == \
        f"In run {run_id}, config B won because of its lowest validation loss (1.2345)."
    assert "A did not win: B did" in chat.handle(f"why did trial A win in run {run_id}?")
