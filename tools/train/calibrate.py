"""Measure this machine before planning: a few real training steps on the chosen base, through the same
trainer the run uses, so the plan's minutes come from this CPU (or GPU) and not from a table."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tools.data import write_jsonl
from tools.train.config import TrainConfig

CALIBRATION_STEPS = 4  # the first step is slow (allocations); more steps average it away
_FILLER = ("The quick answer depends on the details, so here is a short and careful explanation of the main "
           "points, with one example and a note on what to watch out for. ")


@dataclass
class TrainingSpeed:
    """Training throughput on this machine and the fixed cost of one training run."""

    tokens_per_s: float
    run_overhead_s: float
    steps: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_examples(records: list[dict[str, Any]] | None, *, n: int = 48) -> list[dict[str, Any]]:
    """The task's own first examples when there are any (their length is what matters), else filler chat."""
    usable = [r for r in records or [] if isinstance(r, dict) and isinstance(r.get("messages"), list)]
    if usable:
        return (usable * (n // len(usable) + 1))[:n]
    return [{"messages": [{"role": "user", "content": f"Question {i}: explain topic {i} briefly."},
                          {"role": "assistant", "content": _FILLER * 2}]} for i in range(n)]


def measure_training(preset: str, base_dir: Path | str, examples: list[dict[str, Any]], *, row_tokens: int,
                     steps: int = CALIBRATION_STEPS, overrides: dict[str, Any] | None = None) -> TrainingSpeed:
    """Train `steps` optimizer steps of `row_tokens`-token packed rows and time them (weights are discarded)."""
    from tools.train.trainer import train

    work = Path(tempfile.mkdtemp(prefix="ingrain-calibrate-"))
    try:
        write_jsonl(work / "train.jsonl", examples)
        write_jsonl(work / "val.jsonl", examples[:2])
        config = TrainConfig.from_yaml(preset, **{**(overrides or {}), "max_steps": steps, "max_length": row_tokens,
                                                  "grad_accum": 1, "eval_steps": steps, "save_steps": steps,
                                                  "early_stopping_patience": 0, "warmup_ratio": 0.0})
        started = time.perf_counter()
        result = train(config, base_dir, work / "train.jsonl", work / "val.jsonl", work / "out", progress=False)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    step_seconds = result.train_tokens / result.tokens_per_s if result.tokens_per_s else seconds
    return TrainingSpeed(tokens_per_s=result.tokens_per_s, run_overhead_s=round(max(seconds - step_seconds, 1.0), 1),
                         steps=result.steps, seconds=round(seconds, 1))
