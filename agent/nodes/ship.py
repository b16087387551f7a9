"""deploy and reflect: register and promote the version; write lessons and the run's report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agent.context import Context
from agent.state import State
from agent.trace import Tracer, traced
from evals.report import write_report
from tools.deploy import deploy_version
from tools.models import resolve_base


def _promotion(state: State, runtime: Runtime[Context], production: dict[str, Any] | None) -> tuple[bool, str]:
    """Nightly promotes only a version that beats production on the objective's metric."""
    if runtime.context.policy != "nightly" or production is None:
        return True, "approved at the deploy gate" if runtime.context.policy == "interactive" else "verdict passed"
    ours = state.evaluation["summary"]["tuned_metric"]
    theirs = (production.get("metrics") or {}).get("tuned_metric")
    if theirs is None or ours > theirs:
        return True, f"better than production {production['name']} ({ours} > {theirs})"
    return False, f"not better than production {production['name']} ({ours} <= {theirs}); kept as a candidate"


@traced
def deploy(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "deploy")
    ctx = runtime.context
    base = resolve_base(state.spec["base_model"], ctx.workspace)
    with ctx.store() as store:
        promote, reason = _promotion(state, runtime, store.production_model())
        trace.decision("promote" if promote else "keep as candidate", reason)
        deployment = trace.tool(
            "deploy_version", deploy_version, store, ctx.workspace, run_id=ctx.run_id, base=base.name,
            base_dir=base.path, trained_dir=Path(state.training["weights_path"]),
            metrics=state.evaluation["summary"], verdict=state.evaluation["verdict"]["status"],
            config=state.training["config"], dataset_id=state.dataset["dataset_id"], promote=promote,
            promote_reason=reason)
        store.update_run(ctx.run_id, model=deployment.name)
    return {"deployment": deployment.to_dict()}


@traced
def reflect(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "reflect")
    ctx = runtime.context
    with ctx.store() as store:
        for topic, text, data in lessons_from(state):
            store.add_lesson(topic, text, run_id=ctx.run_id, data=data)
            trace.event("lesson", topic, {"text": text})
        events = store.events(ctx.run_id)
        run = store.run(ctx.run_id)
    path = trace.tool("write_report", write_report, ctx.run_dir / "report.html", run=run, state=state, events=events)
    return {"report_path": str(path)}


def lessons_from(state: State) -> list[tuple[str, str, dict[str, Any]]]:
    """Rule-based reflection: what won, how fast it trained, what failed."""
    lessons = []
    if state.sweep and state.sweep.get("winner"):
        won = next(t for t in state.sweep["trials"] if t["name"] == state.sweep["winner"])
        lessons.append(("sweep", f"{state.spec['objective']} task on {state.spec['base_model']}: config "
                        f"{won['overrides']} won ({state.sweep['reason']})",
                        {"winner_overrides": won["overrides"], "objective": state.spec["objective"]}))
        diverged = [t for t in state.sweep["trials"] if t["status"] == "diverged"]
        for trial in diverged:
            lessons.append(("failure", f"config {trial['overrides']} diverged: {trial['error']}",
                            {"overrides": trial["overrides"]}))
    if state.training and state.training.get("tokens_per_s"):
        lessons.append(("timing", f"training ran at {state.training['tokens_per_s']:.0f} tokens/s "
                        f"({state.training.get('precision')}, {state.training.get('backend')})",
                        {"train_tokens_per_s": state.training["tokens_per_s"], "base": state.spec["base_model"]}))
    if state.evaluation and state.evaluation["verdict"]["status"] != "pass":
        lessons.append(("failure", "evaluation failed: " + "; ".join(state.evaluation["verdict"].get("reasons", [])),
                        {}))
    return lessons
