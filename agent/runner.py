"""Drive a run through the graph: start, continue after a gate, resume after a crash; exit codes per DESIGN.

exit 0 finished · exit 3 paused at a gate · exit 1 failed (the run stays resumable from its checkpoint)
"""

from __future__ import annotations

import getpass
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langgraph.types import Command

from agent.context import Context
from agent.errors import AgentError
from agent.graph import build_graph
from memory import Store, Workspace
from memory.checkpoints import run_checkpointer

Ask = Callable[[dict[str, Any]], dict[str, Any]]
EXIT_OK, EXIT_FAILED, EXIT_PAUSED = 0, 1, 3


@dataclass
class Outcome:
    """Where a run stands after the foreground process stopped driving it."""

    run_id: int
    status: str
    """finished | paused | failed."""
    exit_code: int
    message: str
    gate: str | None = None
    payload: dict[str, Any] | None = None
    """What the gate shows (plan, sweep table, verdict)."""
    model: str | None = None
    verdict: str | None = None
    report: str | None = None
    error_trace: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("error_trace")
        return out


def start(goal: str, *, data_paths: list[str] | None = None, base: str | None = None, policy: str | None = None,
          budget_minutes: float | None = None, skip_invalid: bool = False, ask: Ask | None = None,
          on_created: Callable[[int], None] | None = None) -> Outcome:
    """Create a run for `goal` and drive it until it finishes, fails or waits at a gate.

    `on_created` is called with the new run's id before the graph starts (the nightly records it, so a
    nightly killed mid-run knows which run to resume)."""
    if not goal or not goal.strip():
        raise AgentError('The goal is empty. Say what the model should do, e.g. ingrain run "answer questions '
                         'about ./handbook"')
    if policy is None:
        from agent.goal_rules import parse_goal_rules

        # "every night ..." or "... automatically" in the goal picks the policy when no flag does.
        policy = parse_goal_rules(goal, Path.cwd()).policy or "interactive"
    if policy not in ("interactive", "auto", "nightly"):
        raise AgentError(f"Unknown policy {policy!r}: use interactive, auto or nightly.")
    inputs = {"goal": goal.strip(), "data_paths": [str(p) for p in data_paths or []], "base": base,
              "budget_minutes": budget_minutes, "skip_invalid": skip_invalid}
    with Store.open() as store:
        run_id = store.create_run(goal.strip(), policy, spec={"input": inputs})
    if on_created is not None:
        on_created(run_id)
    return _drive(run_id, inputs, ask)


def approve(run_id: int, *, choice: str | None = None, ask: Ask | None = None, by: str | None = None) -> Outcome:
    """Answer the gate a paused run waits at with "approve" (and a trial choice at the winner gate).

    `by` names who answered in the trace (default: the user running this process)."""
    gate, payload = _paused_gate(run_id)
    if choice is not None and gate == "winner":
        names = [t["name"] for t in (payload.get("sweep") or {}).get("trials", [])]
        if choice not in names:
            raise AgentError(f"--choice {choice!r} is not a trial of run {run_id}; pick one of {', '.join(names)}.")
    answer = {"action": "approve", "choice": choice, "by": by or getpass.getuser(), "at": time.time()}
    return _drive(run_id, Command(resume=answer), ask)


def reject(run_id: int, *, reason: str, stop: bool = False, ask: Ask | None = None,
           by: str | None = None) -> Outcome:
    """Answer a paused run's gate with "reject": back to plan with the reason, or stop (`stop=True`)."""
    if not reason.strip():
        raise AgentError("Say why with --reason: the planner reads it when it plans again.")
    _paused_gate(run_id)
    answer = {"action": "reject", "reason": reason, "stop": stop, "by": by or getpass.getuser(), "at": time.time()}
    return _drive(run_id, Command(resume=answer), ask)


def resume(run_id: int, *, ask: Ask | None = None) -> Outcome:
    """Continue a run that failed or whose process was killed, from its last checkpoint."""
    with Store.open() as store:
        run = store.run(run_id)
    if run.get("kind") == "nightly":
        raise AgentError(f"Run {run_id} is a nightly, not an agent run: `ingrain nightly` picks up what an "
                         "interrupted nightly left unfinished.")
    if run["status"] == "paused":
        raise AgentError(f"Run {run_id} waits at the {run['gate']} gate: answer it with `ingrain approve {run_id}` "
                         f"or `ingrain reject {run_id} --reason TEXT`.")
    if run["status"] in ("finished", "rejected"):
        raise AgentError(f"Run {run_id} has already {run['status']}; nothing to resume.")
    inputs = (run.get("spec") or {}).get("input")
    ws = Workspace.from_env()
    with run_checkpointer(ws.run_dir(run_id) / "checkpoints.db") as saver:
        has_checkpoint = saver.get_tuple({"configurable": {"thread_id": str(run_id)}}) is not None
    return _drive(run_id, None if has_checkpoint else inputs, ask)


def _paused_gate(run_id: int) -> tuple[str, dict[str, Any]]:
    with Store.open() as store:
        run = store.run(run_id)
    if run["status"] != "paused":
        raise AgentError(f"Run {run_id} is not waiting at a gate (it is {run['status']}); nothing to answer. "
                         f"`ingrain runs` shows where each run stands.")
    ws = Workspace.from_env()
    with run_checkpointer(ws.run_dir(run_id) / "checkpoints.db") as saver:
        snapshot = build_graph(saver).get_state({"configurable": {"thread_id": str(run_id)}})
    if not snapshot.interrupts:
        raise AgentError(f"Run {run_id} is marked paused but its checkpoint has no open gate; "
                         f"continue it with `ingrain resume {run_id}`.")
    payload = snapshot.interrupts[0].value
    return payload.get("gate", run["gate"]), payload


def _drive(run_id: int, value: Any, ask: Ask | None) -> Outcome:
    ws = Workspace.from_env().ensure()
    with Store.open(ws) as store:
        run = store.run(run_id)
        if not store.claim_run(run_id):
            raise AgentError(f"Run {run_id} is already being continued by process {store.run(run_id)['owner_pid']}; "
                             "wait for it to finish (or stop that process), then try again.")
        ctx = Context(run_id=run_id, home=str(ws.root), policy=run["policy"])
        config = {"configurable": {"thread_id": str(run_id)}, "recursion_limit": 100}
        started = time.time()
        try:
            with run_checkpointer(ws.run_dir(run_id) / "checkpoints.db") as saver:
                graph = build_graph(saver)
                while True:
                    graph.invoke(value, config, context=ctx, durability="sync")
                    snapshot = graph.get_state(config)
                    if not snapshot.interrupts:
                        break
                    payload = snapshot.interrupts[0].value
                    store.record_event(run_id, "gate", node=f"{payload['gate']}_gate", name=payload["gate"],
                                       data={"question": payload["question"]})
                    if ask is None:
                        store.release_run(run_id, "paused", gate=payload["gate"],
                                          wall_seconds=run["wall_seconds"] + time.time() - started)
                        return Outcome(run_id, "paused", EXIT_PAUSED, _pause_message(run_id, payload),
                                       gate=payload["gate"], payload=payload)
                    value = Command(resume=ask(payload))
        except Exception as exc:
            store.record_event(run_id, "error", name=type(exc).__name__,
                               data={"message": str(exc), "traceback": traceback.format_exc()[-4000:]})
            store.release_run(run_id, "failed", error=str(exc), gate=None,
                              wall_seconds=run["wall_seconds"] + time.time() - started)
            store.add_lesson("failure", f"run crashed in {_last_node(store, run_id)}: {type(exc).__name__}: "
                             f"{str(exc)[:300]}", run_id=run_id, data={"error": type(exc).__name__})
            return Outcome(run_id, "failed", EXIT_FAILED,
                           f"{exc}\nRun {run_id} stopped; after fixing the cause, continue it with "
                           f"`ingrain resume {run_id}`.", error_trace=traceback.format_exc())
        except BaseException:
            store.release_run(run_id, "failed", error="interrupted", gate=None)
            raise
        final = snapshot.values
        verdict = ((final.get("evaluation") or {}).get("verdict") or {}).get("status")
        deployment = final.get("deployment") or {}
        store.release_run(run_id, "finished", gate=None, verdict=verdict, model=deployment.get("name"),
                          spec={"input": (run.get("spec") or {}).get("input"), "task": final.get("spec")},
                          wall_seconds=run["wall_seconds"] + time.time() - started)
        message = _finish_message(run_id, final)
        return Outcome(run_id, "finished", EXIT_OK, message, model=deployment.get("name"), verdict=verdict,
                       report=final.get("report_path"))


def _last_node(store: Store, run_id: int) -> str:
    starts = store.events(run_id, kinds=["node_start"])
    return starts[-1]["name"] if starts else "parse_goal"


def _pause_message(run_id: int, payload: dict[str, Any]) -> str:
    extra = " [--choice NAME]" if payload["gate"] == "winner" else ""
    return (f"Run {run_id} is paused at the {payload['gate']} gate: {payload['question']}\n"
            f"  approve:  ingrain approve {run_id}{extra}\n"
            f"  reject:   ingrain reject {run_id} --reason \"...\"")


def _finish_message(run_id: int, final: dict[str, Any]) -> str:
    deployment = final.get("deployment") or {}
    lines = [f"Run {run_id} finished."]
    if final.get("stop_reason"):
        lines.append(f"Stopped early: {final['stop_reason']}")
    verdict = ((final.get("evaluation") or {}).get("verdict") or {})
    if verdict:
        lines.append(f"Verdict: {verdict.get('status')} — " + "; ".join(verdict.get("reasons", [])))
    if deployment:
        state = "promoted to production" if deployment.get("promoted") else "registered as a candidate"
        lines.append(f"Model {deployment['name']} {state} ({deployment.get('reason')}). Serve it: ingrain serve")
    if final.get("report_path"):
        lines.append(f"Report: {final['report_path']}")
    return "\n".join(lines)

