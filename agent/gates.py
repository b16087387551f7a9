"""Approval gates: `interrupt()` where a person decides, skipped or decided by rule under auto/nightly."""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agent.context import Context
from agent.state import State
from agent.trace import Tracer

GATE_QUESTIONS = {
    "plan": "Approve this plan? (approve, or reject with a reason to re-plan)",
    "winner": "Train this sweep winner on the full budget? (approve, --choice NAME for another trial, or reject)",
    "deploy": "Deploy this model version? (approve, or reject to stop without deploying)",
}


def ask(gate: str, runtime: Runtime[Context], payload: dict[str, Any]) -> dict[str, Any]:
    """Pause the run at `gate` until a person answers; returns {"action", "reason", "choice", "by"}."""
    answer = interrupt({"gate": gate, "question": GATE_QUESTIONS[gate], **payload})
    answer = answer if isinstance(answer, dict) else {"action": str(answer)}
    Tracer(runtime.context, f"{gate}_gate").event("answer", gate, answer)
    return answer


def auto(gate: str, runtime: Runtime[Context], reason: str) -> None:
    Tracer(runtime.context, f"{gate}_gate").decision(f"{gate} gate passed", reason, policy=runtime.context.policy)


def plan_gate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    if runtime.context.policy != "interactive":
        auto("plan", runtime, "auto and nightly policies do not ask at the plan gate")
        return {"plan_approved": True}
    answer = ask("plan", runtime, {"plan": state.plan, "spec": state.spec})
    if answer["action"] == "approve":
        return {"plan_approved": True}
    if answer.get("stop"):
        return {"plan_approved": False, "stop_reason": f"plan rejected: {answer.get('reason', '')}"}
    return {"plan_approved": False, "feedback": [answer.get("reason") or "rejected without a reason"]}


def winner_gate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    winner = (state.sweep or {}).get("winner")
    if runtime.context.policy != "interactive":
        auto("winner", runtime, f"trial {winner} won the sweep")
        return {"choice": winner}
    answer = ask("winner", runtime, {"sweep": state.sweep, "winner": winner})
    if answer["action"] == "approve":
        names = [t["name"] for t in (state.sweep or {}).get("trials", [])]
        choice = answer.get("choice") or winner
        if choice not in names:
            raise ValueError(f"--choice {choice!r} is not a trial of this sweep; pick one of {', '.join(names)}.")
        return {"choice": choice}
    if answer.get("stop"):
        return {"choice": None, "stop_reason": f"sweep winner rejected: {answer.get('reason', '')}"}
    return {"choice": None, "plan_approved": False,
            "feedback": [answer.get("reason") or "sweep result rejected"]}


def deploy_gate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    verdict = (state.evaluation or {}).get("verdict", {})
    if runtime.context.policy != "interactive":
        auto("deploy", runtime, f"evaluation verdict: {verdict.get('status')}")
        return {"deploy_approved": verdict.get("status") == "pass"}
    answer = ask("deploy", runtime, {"verdict": verdict, "metrics": (state.evaluation or {}).get("summary")})
    if answer["action"] == "approve":
        return {"deploy_approved": True}
    return {"deploy_approved": False, "stop_reason": f"deploy rejected: {answer.get('reason', '')}"}


# -- routers -----------------------------------------------------------------------------------------
def after_plan_gate(state: State) -> Literal["gather", "plan", "reflect"]:
    if state.plan_approved:
        return "gather"
    return "reflect" if state.stop_reason else "plan"


def after_winner_gate(state: State) -> Literal["train", "plan", "reflect"]:
    if state.choice:
        return "train"
    return "reflect" if state.stop_reason else "plan"


def after_evaluate(state: State) -> Literal["deploy_gate", "reflect"]:
    return "deploy_gate" if (state.evaluation or {}).get("verdict", {}).get("status") == "pass" else "reflect"


def after_deploy_gate(state: State) -> Literal["deploy", "reflect"]:
    return "deploy" if state.deploy_approved else "reflect"
