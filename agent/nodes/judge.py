"""evaluate: base and tuned side by side on the sealed hold-out, plus the regression suite, to a verdict."""

from __future__ import annotations

from typing import Any

from evals.verdict import run_evaluation
from langgraph.runtime import Runtime

from agent.context import Context
from agent.state import State
from agent.trace import Tracer, traced
from tools.datasets import read_jsonl
from tools.models import resolve_base


@traced
def evaluate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "evaluate")
    base = resolve_base(state.spec["base_model"], runtime.context.workspace)
    # The hold-out is read here and nowhere in training.
    holdout = read_jsonl(state.dataset["holdout_path"])
    train_targets = [ex["messages"][-1]["content"] for ex in read_jsonl(state.dataset["train_path"])]
    result = trace.tool("run_evaluation", run_evaluation, base.path, state.training["output_dir"], holdout,
                        train_targets, state.spec["objective"], state.spec.get("success") or {},
                        runtime.context.workspace.root / "eval-cache")
    verdict = result.to_dict()["verdict"]
    trace.decision(f"verdict {verdict['status']}", "; ".join(verdict.get("reasons", [])))
    return {"evaluation": result.to_dict()}
