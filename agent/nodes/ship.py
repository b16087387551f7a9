"""deploy and reflect: register and promote the version; write lessons and the run's report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agent.context import Context
from agent.state import State
from agent.trace import Tracer, traced
from evals.report import write_report
from evals.timing import estimate_vs_actual
from tools.deploy import deploy_version
from tools.models import resolve_base
from tools.train.estimate import Hardware


def _promotion(state: State, runtime: Runtime[Context], production: dict[str, Any] | None) -> tuple[bool, str]:
    """Nightly promotes only a version whose verdict was taken against production (evaluate did that)."""
    if runtime.context.policy != "nightly" or production is None:
        return True, "approved at the deploy gate" if runtime.context.policy == "interactive" else "verdict passed"
    summary = state.evaluation["summary"]
    against = summary.get("against", "base")
    if against != f"production {production['name']}":
        return False, (f"judged against {against}, not against production {production['name']} (it changed "
                       "during the run); kept as a candidate")
    return True, (f"better than production {production['name']} on the same hold-out "
                  f"({summary['primary_metric']} {summary['tuned_metric']:.3f} vs {summary['base_metric']:.3f}) "
                  "with no regression")


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
            promote_reason=reason, grounding_dir=_grounding_dir(state))
        store.update_run(ctx.run_id, model=deployment.name)
    return {"deployment": deployment.to_dict()}


@traced
def reflect(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "reflect")
    ctx = runtime.context
    with ctx.store() as store:
        timing = estimate_vs_actual((state.plan or {}).get("estimate", {}).get("minutes", {}), store.events(ctx.run_id))
        trace.event("timing", "estimate vs actual", {"steps": timing})
        lessons = [*lessons_from(state), *timing_lesson(state, timing)]
        prose = prose_lesson(state, lessons, timing, trace)
        for topic, text, data in [*lessons, *prose]:
            store.add_lesson(topic, text, run_id=ctx.run_id, data=data)
            trace.event("lesson", topic, {"text": text})
        events = store.events(ctx.run_id)
        run = store.run(ctx.run_id)
    path = trace.tool("write_report", write_report, ctx.run_dir / "report.html", run=run, state=state, events=events)
    return {"report_path": str(path)}


def prose_lesson(state: State, lessons: list[tuple[str, str, dict[str, Any]]], timing: list[dict[str, Any]],
                 trace: Tracer) -> list[tuple[str, str, dict[str, Any]]]:
    """With an LLM configured, the run's lesson in a few sentences too; without one (or when it fails) the
    rule-based lessons stand alone."""
    from agent.llm import AgentLLMConfig, chat_model
    from agent.prompts import REFLECT_SYSTEM, REFLECT_USER

    config = AgentLLMConfig.from_env()
    model = chat_model(config)
    if model is None:
        return []
    verdict = (state.evaluation or {}).get("verdict") or {}
    facts = REFLECT_USER.format(goal=state.goal, verdict=f"{verdict.get('status')}: "
                                f"{'; '.join(verdict.get('reasons', []))}" if verdict else state.stop_reason,
                                lessons="; ".join(text for _, text, _ in lessons) or "none",
                                timing=", ".join(f"{r['step']} {r['ratio']}" for r in timing) or "none")
    try:
        reply = model.invoke([("system", REFLECT_SYSTEM), ("human", facts)])
    except Exception as exc:  # a dead or slow endpoint must not fail a finished run
        trace.decision("rule-based reflection only", f"{config.describe()} failed: {exc}")
        return []
    text = str(getattr(reply, "content", "") or "").strip()
    if not text:
        return []
    trace.event("llm", "reflection", {"model": config.model, "chars": len(text)})
    return [("reflection", text[:2000], {"model": config.model})]


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
    if state.evaluation and state.evaluation["verdict"]["status"] != "pass":
        lessons.append(("failure", "evaluation failed: " + "; ".join(state.evaluation["verdict"].get("reasons", [])),
                        {}))
    return lessons


def timing_lesson(state: State, timing: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """The speeds this run planned with and, per step, how far off the plan was, so the next plan is closer.

    A correction multiplies the one the plan already used. Training that stopped because the goal metric
    was met or flat ended early by design, so it corrects nothing.
    """
    plan = state.plan or {}
    speeds, hardware = plan.get("speeds"), plan.get("hardware") or {}
    if not speeds or not timing:
        return []
    corrections = dict(speeds.get("corrections") or {})
    goal_stopped = (state.training or {}).get("stop_reason", "") not in ("", "deadline", "max_steps")
    for row in timing:
        if row["ratio"] is None or (row["step"] == "train" and goal_stopped):
            continue
        corrections[row["step"]] = round(min(2.0, max(0.5, corrections.get(row["step"], 1.0) * row["ratio"])), 3)
    text = (f"planned with train {speeds['train_tokens_per_s']:.0f} tok/s, generate "
            f"{speeds['generate_tokens_per_s']:.0f} tok/s ({speeds['source']}); actual/estimate: "
            + ", ".join(f"{r['step']} {r['ratio']}" for r in timing if r["ratio"] is not None))
    data = {"base": state.spec["base_model"], "hardware": Hardware(**hardware).key(),
            "train_tokens_per_s": speeds["train_tokens_per_s"],
            "generate_tokens_per_s": speeds["generate_tokens_per_s"], "run_overhead_s": speeds["run_overhead_s"],
            "corrections": corrections, "steps": timing}
    return [("timing", text, data)]


def _grounding_dir(state: State) -> Path | None:
    """The run's excerpt index, which a knowledge model is served with as it was trained and judged."""
    path = (state.dataset or {}).get("grounding_path")
    return Path(path) if path else None
