"""Hyperparameter sweep: k short trials ranked by validation loss, the objective's metric breaking ties.

Validation loss alone can pick a model that has not learned the target format, so when a metric of
the objective is supplied and it disagrees with the loss ranking, the metric decides and the reason says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tools.sweep.trial import Trial, run_one

TRIAL_NAMES = "ABCDEFGH"
RAY_ADDRESS_ENV = "INGRAIN_RAY_ADDRESS"
# The levers that matter most for small models, in the order trials add them.
GRID_CANDIDATES: list[dict[str, Any]] = [
    {"lr": 2e-4, "r": 16, "alpha": 16},   # the field's default recipe
    {"lr": 1e-3, "r": 16, "alpha": 32},   # small models tolerate (and often need) a higher rate
    {"lr": 5e-4, "r": 32, "alpha": 32},   # more capacity
    {"lr": 5e-5, "r": 16, "alpha": 16, "method": "full"},  # full fine-tuning, feasible at ~100M params
    {"lr": 1e-4, "r": 8, "alpha": 16},
]
KNOWLEDGE_CANDIDATES: list[dict[str, Any]] = [
    # Facts are memorised at a high rate: lr 1e-3 (alpha 2r) won every knowledge sweep on SmolLM2, and a
    # one-epoch trial cannot tell memorising configurations apart, so one trial starts training (bench/).
    {"lr": 1e-3, "r": 16, "alpha": 32},
    {"lr": 5e-4, "r": 32, "alpha": 32},
    {"lr": 2e-4, "r": 16, "alpha": 16},
]
KNOWLEDGE_TRIALS = 1


@dataclass
class SweepResult:
    trials: list[Trial]
    winner: str | None
    reason: str
    ranking: list[str] = field(default_factory=list)
    executor: str = "sequential"     # where the trials ran: "sequential" or "ray at ADDRESS"

    def to_dict(self) -> dict[str, Any]:
        return {"trials": [t.to_dict() for t in self.trials], "winner": self.winner, "reason": self.reason,
                "ranking": self.ranking, "executor": self.executor}


def default_grid(n_examples: int, *, k: int | None = None, lessons: list[dict[str, Any]] | None = None,
                 feedback: str = "", objective: str = "") -> list[dict[str, Any]]:
    """k configurations: what the feedback asks, what won before on this machine, and the field's defaults.

    A knowledge goal gets one trial (KNOWLEDGE_TRIALS) from its own candidates, and learns only from lessons of
    knowledge runs; other goals get 3 and learn from any run's lesson. "2 trials" in the feedback overrides k.
    """
    knowledge = objective == "knowledge"
    k = k if k is not None else KNOWLEDGE_TRIALS if knowledge else 3
    grid: list[dict[str, Any]] = []
    asked = requested_overrides(feedback)
    if set(asked) - {"trials"}:  # "2 trials" alone asks for a count, not a configuration
        grid.append(asked)
    for lesson in lessons or []:
        data = lesson.get("data") or {}
        won = data.get("winner_overrides") if lesson.get("topic") == "sweep" else None
        if won and won not in grid and (not knowledge or data.get("objective") == "knowledge"):
            grid.append(won)
            break
    for candidate in KNOWLEDGE_CANDIDATES if knowledge else GRID_CANDIDATES:
        if n_examples < 200 and candidate.get("method") == "full":
            continue  # too little data to move every weight safely
        if candidate not in grid:
            grid.append(dict(candidate))
    k = asked.get("trials", k) if asked else k
    return [{"name": TRIAL_NAMES[i], **{key: v for key, v in g.items() if key != "trials"}}
            for i, g in enumerate(grid[:k])]


def _last(pattern: str, text: str) -> re.Match[str] | None:
    """The last mention wins: a rejection's reason comes after the goal and overrides it."""
    matches = list(re.finditer(pattern, text, re.I))
    return matches[-1] if matches else None


def requested_overrides(text: str) -> dict[str, Any]:
    """Hyperparameters a person named in words: "lr 1e-3", "rank 8", "2 trials", "full fine-tuning"."""
    found: dict[str, Any] = {}
    if m := _last(r"\b(?:lr|learning rate)\s*(?:=|of)?\s*([0-9.]+e-?[0-9]+|0\.[0-9]+)", text):
        found["lr"] = float(m.group(1))
    if m := _last(r"\brank\s*(?:=|of)?\s*(\d+)|\br\s*=\s*(\d+)", text):
        found["r"] = int(m.group(1) or m.group(2))
    if m := _last(r"\b(\d)\s+(?:trials|configs|configurations)\b", text):
        found["trials"] = max(1, min(int(m.group(1)), len(TRIAL_NAMES)))
    if re.search(r"\bfull fine-?tun", text, re.I):
        found["method"] = "full"
    return found


def run_sweep(grid: list[dict[str, Any]], run_trial: Callable[[Trial], Any],
              score_fn: Callable[[Trial], float | None] | None = None, *, min_metric_gap: float = 0.1,
              address: str | None = None) -> SweepResult:
    """Run each trial, then rank them.

    `run_trial` trains one configuration and returns a TrainResult-like object; `score_fn` rates a
    finished trial on the objective's metric (higher is better) and may be None. With a Ray cluster
    `address` (default: $INGRAIN_RAY_ADDRESS) and ray[tune] installed, the trials run as one Ray Tune
    experiment, in parallel where the cluster has room; otherwise one after another in this process
    (two CPU cores fit one trainer).
    """
    trials = [Trial(g["name"], {k: v for k, v in g.items() if k != "name"}) for g in grid]
    address = ray_address() if address is None else address.strip() or None
    if address and ray_installed():
        from tools.sweep.ray_tune import run_trials_on_ray

        trials = run_trials_on_ray(trials, run_trial, score_fn, address)
        executor = f"ray at {address}"
    else:
        for trial in trials:
            run_one(trial, run_trial, score_fn)
        executor = "sequential" if not address else (
            f"sequential ({RAY_ADDRESS_ENV}={address} but ray[tune] is not installed: "
            "pip install 'ingrain-agent[ray]')")
    result = rank(trials, min_metric_gap=min_metric_gap)
    result.executor = executor
    return result


def ray_address() -> str | None:
    """The Ray cluster to sweep on ($INGRAIN_RAY_ADDRESS: ray://host:10001, auto, or local), if any."""
    return os.environ.get(RAY_ADDRESS_ENV, "").strip() or None


def ray_installed() -> bool:
    import importlib.util

    # Only the top-level package: looking up ray.tune would import ray before tools.sweep.ray_tune configures it.
    return importlib.util.find_spec("ray") is not None


def rank(trials: list[Trial], *, min_metric_gap: float = 0.1) -> SweepResult:
    ok = [t for t in trials if t.status == "ok"]
    if not ok:
        lowest = min((t.overrides.get("lr", 2e-4) for t in trials), default=2e-4)
        return SweepResult(trials, None, "every trial diverged or failed; try a lower learning rate "
                           f"(e.g. --reason 'lr {lowest / 4:.0e}') or check the data", [])
    by_loss = sorted(ok, key=lambda t: t.val_loss)
    winner, reason = by_loss[0], f"lowest validation loss ({by_loss[0].val_loss:.4f})"
    scored = [t for t in ok if t.metric is not None]
    if scored:
        by_metric = max(scored, key=lambda t: t.metric)
        if by_metric is not winner and by_metric.metric - (winner.metric or 0.0) >= min_metric_gap:
            reason = (f"the objective's metric disagrees with the loss: {by_metric.name} scores "
                      f"{by_metric.metric:.2f} against {winner.metric or 0:.2f} for {winner.name} "
                      f"(val loss {by_metric.val_loss:.4f} vs {winner.val_loss:.4f}); the metric decides")
            winner = by_metric
    ranking = [winner.name] + [t.name for t in by_loss if t is not winner]
    return SweepResult(trials, winner.name, reason, ranking)
