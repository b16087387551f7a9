"""Training's deadline: the planned training time, moved by what the steps before it overran or saved."""

from __future__ import annotations

import time

from langgraph.runtime import Runtime

from agent.context import Context
from agent.nodes.training import _train_deadline
from agent.state import State
from memory import Store, Workspace

PLAN = {"estimate": {"minutes": {"plan": 0.5, "prepare": 1.0, "sweep": 2.0, "train": 5.0},
                     "steps_per_epoch": 10, "row_tokens": 512},
        "speeds": {"train_tokens_per_s": 256.0}}  # an epoch: 10 steps of 2 s


def deadline_after(workspace: Workspace, spent: dict[str, float]) -> float:
    with Store.open(workspace) as store:
        run_id = store.create_run("a goal", "auto")
        for node, seconds in spent.items():
            store.record_event(run_id, "node_end", node=node, name=node, duration_s=seconds)
    context = Context(run_id, str(workspace.root), policy="auto")
    return _train_deadline(State(goal="a goal", plan=PLAN), Runtime(context=context)) - time.time()


def test_time_the_earlier_steps_saved_goes_to_training_and_time_they_overran_comes_off_it(workspace) -> None:
    # Planned before training: plan 30 s, prepare 60 s (gather + build_data), sweep 120 s.
    on_plan = deadline_after(workspace, {"plan": 30, "gather": 10, "build_data": 50, "sweep": 120})
    saved = deadline_after(workspace, {"plan": 30, "gather": 10, "build_data": 50, "sweep": 45})
    overran = deadline_after(workspace, {"plan": 40, "gather": 10, "build_data": 80, "sweep": 120})
    assert abs(on_plan - 300) < 2 and abs(saved - 375) < 2 and abs(overran - 260) < 2
    # However far behind, training gets one epoch.
    assert abs(deadline_after(workspace, {"plan": 30, "build_data": 60, "sweep": 900}) - 20) < 2
