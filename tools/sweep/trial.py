"""One sweep trial: its configuration and scores, how it is run and scored, and the divergence stop."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.errors import ToolError


class TrialDiverged(ToolError):
    """A trial's loss became NaN or exploded; it is stopped and marked."""


@dataclass
class Trial:
    """One sweep configuration and what it scored."""

    name: str
    overrides: dict[str, Any]
    status: str = "pending"          # pending | ok | diverged | failed
    val_loss: float | None = None
    train_loss: float | None = None
    metric: float | None = None      # the objective's metric on a small validation sample (higher is better)
    tokens_per_s: float | None = None
    wall_seconds: float | None = None
    output_dir: str | None = None
    error: str | None = None
    loss_curve: list[dict[str, Any]] = field(default_factory=list)  # the trainer's logged points, for the report

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



def run_one(trial: Trial, run_trial: Callable[[Trial], Any],
            score_fn: Callable[[Trial], float | None] | None = None) -> Trial:
    """Train and score one trial in place: ok, diverged (stopped or non-finite loss) or failed (a ToolError)."""
    started = time.time()
    try:
        result = run_trial(trial)
    except TrialDiverged as exc:
        trial.status, trial.error = "diverged", str(exc)
    except ToolError as exc:
        trial.status, trial.error = "failed", str(exc)
    else:
        trial.status = "ok"
        trial.val_loss = _finite(getattr(result, "best_val_loss", None) or getattr(result, "final_val_loss", None))
        trial.train_loss = _finite(getattr(result, "final_train_loss", None))
        trial.tokens_per_s = getattr(result, "tokens_per_s", None)
        trial.output_dir = str(getattr(result, "output_dir", "") or "")
        trial.loss_curve = list(getattr(result, "loss_curve", None) or [])
        if trial.val_loss is None:
            trial.status, trial.error = "diverged", "validation loss is not finite"
        elif score_fn is not None:
            trial.metric = score_fn(trial)
    trial.wall_seconds = round(time.time() - started, 1)
    return trial


def check_divergence(losses: list[float], *, factor: float = 4.0) -> None:
    """Raise TrialDiverged when the latest loss is NaN/inf or the mean of the last three is `factor` × the first.

    The mean of three, not the last loss alone: with replay mixed in, one batch can be mostly the base
    model's own replies (a low loss) and the next mostly task examples (a high one) without anything wrong.
    """
    if not losses:
        return
    last, recent = losses[-1], sum(losses[-3:]) / len(losses[-3:])
    if not math.isfinite(last) or (len(losses) > 2 and recent > factor * losses[0]):
        raise TrialDiverged(f"loss went from {losses[0]:.3f} to {last:.3f}")


def divergence_watch() -> Callable[[dict[str, Any]], None]:
    """A training `on_log` callback that raises TrialDiverged as soon as the logged loss explodes."""
    losses: list[float] = []

    def watch(log: dict[str, Any]) -> None:
        if log.get("loss") is not None:
            losses.append(float(log["loss"]))
            check_divergence(losses)

    return watch


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def trial_dir(root: Path, trial: Trial) -> Path:
    return root / f"trial-{trial.name}"
