"""sweep and train: short trials to pick a configuration, then the winner on the full budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime

from agent.context import Context
from agent.state import State
from agent.trace import Tracer, traced
from evals.quick import objective_score
from tools import sweep as sweeps
from tools.data import read_jsonl, write_jsonl
from tools.deploy import version_name
from tools.models import resolve_base
from tools.train import trainer
from tools.train.config import TrainConfig


def _config(state: State, overrides: dict[str, Any], max_steps: int, *, evaluations: int) -> TrainConfig:
    """The preset for this hardware, the trial's overrides, and the step budget from the plan."""
    # Each validation pass costs about a third of a training step per token, so a short sweep trial is
    # validated once, at its end, and the final run a few times (for early stopping and checkpoints).
    every = max(1, max_steps // evaluations)
    return TrainConfig.from_yaml(state.plan["preset"], **{"grad_accum": state.plan["grad_accum"], **overrides,
                                                          "max_steps": max_steps, "eval_steps": every,
                                                          "save_steps": every})


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
    val_sample = read_jsonl(data["val_path"])[:4]
    train_targets = [ex["messages"][-1]["content"] for ex in read_jsonl(data["train_path"])[:200]]

    def run_trial(trial: sweeps.Trial) -> Any:
        out = sweeps.trial_dir(root, trial)
        return trace.tool(f"train trial {trial.name}", trainer.train,
                          _config(state, trial.overrides, steps, evaluations=1),
                          base.path, training_file(data), data["val_path"], out,
                          resume=(out / trainer.CHECKPOINTS).exists(), on_log=sweeps.divergence_watch())

    def score(trial: sweeps.Trial) -> float | None:
        weights = Path(trial.output_dir) / ("model" if trial.overrides.get("method") == "full" else "adapter")
        return objective_score(base.path, weights, val_sample, state.spec["objective"], train_targets)

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
    config = _config(state, chosen["overrides"], state.plan["estimate"]["train_steps"], evaluations=4)
    # A killed run continues from the trainer's last checkpoint instead of starting over.
    resume = (out / trainer.CHECKPOINTS).exists()
    if resume:
        trace.decision("resume training", f"checkpoints exist in {out / trainer.CHECKPOINTS}")
    result = trace.tool("train", trainer.train, config, base.path, training_file(state.dataset),
                        state.dataset["val_path"], out, resume=resume)
    trace.metric("train_tokens_per_s", result.tokens_per_s)
    # Every trained model is a candidate version at once; deploy later replaces it with merged weights.
    with runtime.context.store() as store:
        store.register_model(version_name(base.name, runtime.context.run_id), base=base.name,
                             kind="full" if config.method == "full" else "adapter", path=result.weights_path,
                             run_id=runtime.context.run_id, dataset_id=state.dataset["dataset_id"],
                             config=config.to_dict(), metrics={"val_loss": result.best_val_loss})
    return {"training": {**result.to_dict(), "config": config.to_dict(), "trial": state.choice}}
