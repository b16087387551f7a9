"""sweep and train: short trials to pick a configuration, then the winner on the full budget."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agent.context import Context
from agent.state import State
from agent.trace import Tracer, traced
from evals.quick import goal_scorer, objective_score, reply_budget, suite_guard
from evals.timing import actual_seconds
from evals.verdict import Criteria, nll_limit
from tools import sweep as sweeps
from tools.data import read_jsonl, write_jsonl
from tools.data.knowledge.config import RECITATION_KINDS
from tools.deploy import version_name
from tools.grounding import load_grounding
from tools.models import load_tokenizer, resolve_base
from tools.train import trainer
from tools.train.config import KNOWLEDGE_RECALL_WEIGHT, TrainConfig
from tools.train.estimate import GOAL_SAMPLE
from tools.train.goal_stop import GoalStop


def _config(state: State, overrides: dict[str, Any], max_steps: int, *, every: int) -> TrainConfig:
    """The preset for this hardware, the trial's overrides, and the step budget and row length from the plan.

    Validation loss and a checkpoint every `every` steps: a sweep trial once, at its end; the final run each
    time the goal metric is scored, so a killed run resumes from no further back than the last score.
    """
    every = max(1, min(every, max_steps))
    est = state.plan["estimate"]
    # A fact's value is what a knowledge answer must recall; its words the question already holds can be copied.
    recall = {"recall_weight": KNOWLEDGE_RECALL_WEIGHT} if state.spec["objective"] == "knowledge" else {}
    return TrainConfig.from_yaml(state.plan["preset"], **{
        "grad_accum": state.plan["grad_accum"], "max_length": est.get("row_tokens", 1024), **recall, **overrides,
        "max_steps": max_steps, "eval_steps": every, "save_steps": every})


def _goal_sample(state: State) -> tuple[list[dict[str, Any]], list[str]]:
    """The validation examples the goal metric is scored on, and the training targets its style is learned from."""
    val = read_jsonl(state.dataset["val_path"])
    # A knowledge goal is judged on questions: recitations and blanks go last, so the sample asks questions.
    val.sort(key=lambda ex: ex.get("meta", {}).get("kind") in RECITATION_KINDS)
    sample = val[:GOAL_SAMPLE]
    targets = [ex["messages"][-1]["content"] for ex in read_jsonl(state.dataset["train_path"])[:200]]
    return sample, targets


def _train_deadline(state: State, runtime: Runtime[Context]) -> float:
    """Now plus the planned training time, less what the earlier steps overran or plus what they saved (never
    below one epoch): the plan's speeds come from a short calibration that read 108-135 tok/s decoding and
    132-185 tok/s training in three runs on one machine, so a step's plan can be far off in either direction,
    and time an earlier step saved is the budget's, not idle time at the end (a CI-sized run whose sweep took
    0.38 of its plan finished in 7 of its 10 minutes, undertrained)."""
    est = state.plan["estimate"]
    with runtime.context.store() as store:
        spent = actual_seconds(store.events(runtime.context.run_id, kinds=["node_end"]))
    overrun = sum(spent.get(step, 0.0) - est["minutes"].get(step, 0.0) * 60 for step in ("plan", "prepare", "sweep"))
    one_epoch = est["steps_per_epoch"] * est["row_tokens"] / state.plan["speeds"]["train_tokens_per_s"]
    return time.time() + max(est["minutes"]["train"] * 60 - overrun, one_epoch)


def training_file(dataset: dict[str, Any]) -> str:
    """The task's training examples plus the replay examples, as one file the trainer reads."""
    if not dataset.get("replay_path"):
        return dataset["train_path"]
    mixed = Path(dataset["train_path"]).with_name("train_with_replay.jsonl")
    if not mixed.exists():
        write_jsonl(mixed, read_jsonl(dataset["train_path"]) + read_jsonl(dataset["replay_path"]))
    return str(mixed)


@traced
def sweep(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "sweep")
    base = resolve_base(state.spec["base_model"], runtime.context.workspace)
    data = state.dataset
    steps = state.plan["estimate"]["sweep_steps_per_trial"]
    root = runtime.context.run_dir / "sweep"
    sample, targets = _goal_sample(state)
    budget = reply_budget(load_tokenizer(base.path), [ex["messages"][-1]["content"] for ex in sample])

    def run_trial(trial: sweeps.Trial) -> Any:
        out = sweeps.trial_dir(root, trial)
        return trace.tool(f"train trial {trial.name}", trainer.train,
                          _config(state, trial.overrides, steps, every=steps),
                          base.path, training_file(data), data["val_path"], out,
                          resume=(out / trainer.CHECKPOINTS).exists(), on_log=sweeps.divergence_watch())

    def score(trial: sweeps.Trial) -> float | None:
        weights = Path(trial.output_dir) / ("model" if trial.overrides.get("method") == "full" else "adapter")
        return objective_score(base.path, weights, sample, state.spec["objective"], targets, max_new_tokens=budget)

    # On a Ray cluster ($INGRAIN_RAY_ADDRESS) the trials run as Ray Tune trials, a GPU each where there are GPUs.
    result = sweeps.run_sweep(state.plan["grid"], run_trial, score)
    trace.decision("sweep executor", result.executor)
    trace.decision(f"winner {result.winner}", result.reason, ranking=result.ranking, executor=result.executor)
    if result.winner is None:
        raise sweeps.TrialDiverged(result.reason)
    return {"sweep": result.to_dict()}


@traced
def train(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    trace = Tracer(runtime.context, "train")
    base = resolve_base(state.spec["base_model"], runtime.context.workspace)
    chosen = next(t for t in state.sweep["trials"] if t["name"] == state.choice)
    out = runtime.context.run_dir / "train"
    est = state.plan["estimate"]
    # The deadline and the goal metric end training; max_steps only shapes the rate's decay, with headroom so a
    # machine faster than planned does not stop early while the metric is still rising.
    config = _config(state, chosen["overrides"], int(est["train_steps"] * 1.5) + est.get("score_every", 10),
                     every=est.get("score_every", 10))
    # A killed run continues from the trainer's last checkpoint instead of starting over.
    resume = (out / trainer.CHECKPOINTS).exists()
    if resume:
        trace.decision("resume training", f"checkpoints exist in {out / trainer.CHECKPOINTS}")
    # The winner's trial already trained an epoch: continue from its weights rather than start again.
    trial_weights = Path(chosen.get("output_dir") or "") / ("model" if config.method == "full" else "adapter")
    init_from = trial_weights if chosen.get("status") == "ok" and trial_weights.is_dir() else None
    if init_from is not None and state.spec["objective"] != "knowledge":
        # Continuing from a trial that already learned the shape: half its rate refines without drifting as far
        # from the base (the regression suite's reference NLL rose past its limit at the full rate). Facts are
        # not a shape: a knowledge goal keeps memorising at the trial's rate, within its wider forgetting limit.
        config = TrainConfig.from_dict({**config.to_dict(), "lr": config.lr / 2})
    sample, targets = _goal_sample(state)
    # Keep clear of the verdict's forgetting limit: drift past most of it costs the checkpoint its score.
    limit = nll_limit(state.spec["objective"])
    # Facts drift a model's general answers before its reference NLL shows it (a knowledge run fell 56 → 39 %
    # on the suite at +0.5 nats): kept weights must pass the verdict's pass-rate rule too, and
    # then a later tie with a lower loss may replace the best. Style runs have stayed inside the NLL penalty.
    knowledge = state.spec["objective"] == "knowledge"
    success = state.spec.get("success") or {}
    guard = suite_guard(threshold=success.get("max_regression") or Criteria.regression_threshold,
                        max_new_tokens=Criteria.suite_max_new_tokens, batch_size=Criteria.batch_size,
                        grounding=load_grounding(state.dataset.get("grounding_path"))) \
        if knowledge else None
    goal = GoalStop(score=goal_scorer(sample, state.spec["objective"], targets, nll_allowance=0.8 * limit,
                                      nll_limit=limit),
                    every=est.get("score_every", 10), deadline=_train_deadline(state, runtime), best_dir=out / "best",
                    guard=guard, refresh_on_tie=knowledge)
    trace.decision("train on the goal", f"score {state.spec['objective']} metric on {len(sample)} validation "
                   f"examples every {goal.every} steps, keep the best, stop when it is flat for {goal.patience} "
                   f"scores or at {time.strftime('%H:%M:%S', time.localtime(goal.deadline))}"
                   + ("; kept weights must pass the regression suite's pass-rate rule (checked at once until some "
                      "pass, then when training stops, newest first), and a later tie with a lower validation loss "
                      "replaces the best" if guard else ""),
                   init_from=str(init_from) if init_from else None, max_steps=config.max_steps)
    result = trace.tool("train", trainer.train, config, base.path, training_file(state.dataset),
                        state.dataset["val_path"], out, resume=resume, goal=goal, init_from=init_from)
    trace.decision(f"stopped: {result.stop_reason}", f"kept the weights of step {result.best_goal_step} of "
                   f"{result.steps} (goal metric {result.best_goal_metric})", curve=result.goal_curve)
    trace.metric("train_tokens_per_s", result.tokens_per_s)
    # Every trained model is a candidate version at once; deploy later replaces it with merged weights.
    with runtime.context.store() as store:
        store.register_model(version_name(base.name, runtime.context.run_id), base=base.name,
                             kind="full" if config.method == "full" else "adapter", path=result.weights_path,
                             run_id=runtime.context.run_id, dataset_id=state.dataset["dataset_id"],
                             config=config.to_dict(), metrics={"val_loss": result.best_val_loss})
    return {"training": {**result.to_dict(), "config": config.to_dict(), "trial": state.choice}}
