"""parse_goal and plan: from the user's words to a spec, then to a plan with estimates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agent import goal as goals
from agent.context import Context
from agent.errors import AgentError
from agent.state import State
from agent.trace import Tracer, traced
from tools import sweep
from tools.errors import ToolError
from tools.models import resolve_base
from tools.train import estimate
from tools.train.config import TrainConfig


def _parse(text: str, state: State, runtime: Runtime[Context], trace: Tracer) -> tuple[dict[str, Any], list[str]]:
    # The run's policy was fixed when it started (flag or goal words); the spec only records it.
    parsed = goals.parse_goal(text, data_paths=state.data_paths, base=state.base,
                              budget_minutes=state.budget_minutes, cwd=Path.cwd())
    for step in parsed.trace:
        details = {k: v for k, v in step.items() if k != "reason"}
        trace.decision(f"goal parsed by the {step.get('path')} path", step.get("reason", ""), **details)
    problems = [getattr(p, "message", str(p)) for p in goals.validate_spec(parsed.spec, Path.cwd())]
    if not problems:
        try:
            trace.tool("resolve_base", resolve_base, parsed.spec.base_model, runtime.context.workspace)
        except ToolError as exc:
            problems.append(str(exc))
    return parsed.spec.model_dump(), problems


@traced
def parse_goal(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    spec, problems = _parse(state.goal, state, runtime, Tracer(runtime.context, "parse_goal"))
    return {"spec": spec, "problems": problems}


@traced
def plan(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "plan")
    spec, problems = state.spec, state.problems
    if state.feedback:
        # A rejection's reason is read as more goal text: "use ./docs", "budget 5 minutes", "2 trials".
        spec, problems = _parse(f"{state.goal}. {' '.join(state.feedback)}", state, runtime, trace)
        trace.decision("re-planned", "the plan was rejected with a reason", feedback=state.feedback)
    if problems:
        raise AgentError("Cannot act on this goal yet:\n- " + "\n- ".join(problems))
    with runtime.context.store() as store:
        lessons = store.lessons(limit=20)
    hardware = trace.tool("detect_hardware", estimate.detect_hardware)
    stats = trace.tool("source_stats", estimate.source_stats, spec["sources"])
    # Documents become a few questions per ~300-word passage; each example is ~150 tokens.
    examples = stats.examples + 3 * max(stats.documents, stats.words // 300)
    tokens = examples * 150
    # Hyperparameters named in the goal or in a rejection ("lr 1e-3", "2 trials") shape the grid.
    grid = sweep.default_grid(examples, lessons=lessons, feedback=" ".join([state.goal, *state.feedback]))
    measured = [lesson["data"]["train_tokens_per_s"] for lesson in lessons
                if lesson["topic"] == "timing" and isinstance(lesson.get("data"), dict)
                and lesson["data"].get("base") == spec["base_model"] and lesson["data"].get("train_tokens_per_s")]
    budget = spec.get("budget_minutes") or (30 if hardware.device == "cpu" else 120)
    preset = "lora-cpu" if hardware.device == "cpu" else "lora-cuda"
    config = TrainConfig.from_yaml(preset)
    speed = measured[0] if measured else None

    def allocate(grad_accum: int, trials: int) -> estimate.Estimate:
        return estimate.allocate_budget(examples=examples, tokens=tokens, budget_minutes=budget, trials=trials,
                                        hardware=hardware, train_tokens_per_s=speed,
                                        batch_tokens=config.batch_size * grad_accum * config.max_length)

    grad_accum = config.grad_accum
    est = allocate(grad_accum, len(grid))
    if est.train_steps < 100 and grad_accum > 1:
        # A short budget gets more, smaller optimizer steps from the same tokens.
        grad_accum = 1
        est = allocate(grad_accum, len(grid))
    asked_trials = "trials" in sweep.requested_overrides(" ".join([state.goal, *state.feedback]))
    if est.sweep_steps_per_trial < 8 and len(grid) > 2 and not asked_trials:
        grid = grid[:2]
        est = allocate(grad_accum, len(grid))
        trace.decision("2 sweep trials", "the budget leaves fewer than 8 steps per trial for 3")
    if est.train_steps < 1 or est.sweep_steps_per_trial < 1:
        raise AgentError(f"A budget of {budget} minutes leaves no time to train on this machine "
                         f"(evaluation alone needs ~{est.minutes['evaluate']} min). Give --budget-minutes "
                         f"{int(est.minutes['evaluate'] + 4)} or more.")
    trace.decision("estimate", f"{est.minutes['total']} min on {hardware.device}",
                   tokens_per_s_source="lessons" if measured else "default")
    steps = ["gather documents", "build and split data", f"sweep {len(grid)} configs",
             "train the winner", "evaluate against the base", "deploy", "reflect"]
    return {"spec": spec, "problems": [], "plan": {
        "objective": spec["objective"], "base_model": spec["base_model"], "sources": spec["sources"],
        "budget_minutes": budget, "steps": steps, "preset": preset, "grad_accum": grad_accum, "grid": grid,
        "hardware": hardware.to_dict(), "estimate": est.to_dict(),
        "lessons_used": [lesson["text"] for lesson in lessons[:5]],
    }}
