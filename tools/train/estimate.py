"""Plan arithmetic: how big the data will be, how long each step takes on this hardware, what it costs."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# fp32 LoRA on SmolLM2-135M inside the graph (TRL with the CPU loss, 1024-token packed rows, validation
# included) on 2 AVX2 cores: 70-78 tok/s in the main job. A run's own measured speed (a lesson) replaces it.
DEFAULT_TRAIN_TOKENS_PER_S = {"cpu": 70.0, "cuda": 20000.0}
# Per sweep trial beyond its steps: loading the model, one validation pass, the objective's quick score.
TRIAL_OVERHEAD_MINUTES = {"cpu": 0.6, "cuda": 0.3}
TOKENS_PER_EXAMPLE = 90
# Batched greedy decoding (batch 32, fp32) on SmolLM2; see bench/evals_generate.py.
DEFAULT_GENERATE_TOKENS_PER_S = {"cpu": 35.0, "cuda": 2000.0}
REGRESSION_SUITE_PROMPTS = 18
GPU_DOLLARS_PER_HOUR = 1.2


@dataclass
class Hardware:
    """What this machine trains on."""

    device: str
    """cpu | cuda."""
    cores: int
    """CPU cores available to this process."""
    bf16: bool
    """Whether bf16 math is fast here."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_hardware() -> Hardware:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if torch.cuda.is_available():
        return Hardware("cuda", cores, torch.cuda.is_bf16_supported())
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return Hardware("cpu", cores, "avx512_bf16" in flags or "amx_bf16" in flags)


@dataclass
class SourceStats:
    """A cheap look at the sources before anything is read in full."""

    documents: int = 0
    words: int = 0
    examples: int = 0
    """Examples in given dataset files (line count for JSONL)."""


@dataclass
class Estimate:
    """Sizes and times the plan gate shows."""

    examples: int
    tokens: int
    sweep_trials: int
    sweep_steps_per_trial: int
    train_steps: int
    tokens_per_step: int
    minutes: dict[str, float] = field(default_factory=dict)
    """Per step (gather, sweep, train, evaluate, deploy) and total."""
    max_examples: int | None = None
    """Cap on examples the budget can train for about three epochs (None: no cap needed)."""
    gpu_cost_usd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def allocate_budget(*, examples: int, tokens: int, budget_minutes: float, trials: int, hardware: Hardware,
                    train_tokens_per_s: float | None = None, eval_examples: int = 32,
                    eval_new_tokens: int = 80, batch_tokens: int = 1024) -> Estimate:
    """Split a wall-time budget into sweep and training steps, leaving room for evaluation."""
    tps = train_tokens_per_s or DEFAULT_TRAIN_TOKENS_PER_S[hardware.device]
    gen_tps = DEFAULT_GENERATE_TOKENS_PER_S[hardware.device]
    # Base and tuned each generate for the hold-out and the regression suite.
    eval_min = 2 * (eval_examples + REGRESSION_SUITE_PROMPTS) * eval_new_tokens / gen_tps / 60 + 0.5
    fixed_min = 1.0  # model load/convert, data build, merge and registry
    overhead_min = TRIAL_OVERHEAD_MINUTES[hardware.device] * trials
    train_min = max(budget_minutes - eval_min - fixed_min - overhead_min, 0.0)
    steps_total = int(train_min * 60 * tps / batch_tokens)
    tokens_per_epoch = max(tokens, 1)
    # Sweeps take about a third of the training time; the winner trains at most 3 epochs.
    sweep_steps = max(int(steps_total * 0.3 / max(trials, 1)), 0)
    # Three epochs, but never fewer than 40 steps when the budget allows: tiny data sets need repetition.
    train_steps = min(steps_total - sweep_steps * trials, max(40, 3 * tokens_per_epoch // batch_tokens))
    # When the budget cannot see the data about three times, train on a sample it can.
    affordable = int(max(train_steps, 0) * batch_tokens / 3 / TOKENS_PER_EXAMPLE)
    max_examples = affordable if affordable < examples else None
    minutes = {
        "prepare": fixed_min,
        "sweep": round(sweep_steps * trials * batch_tokens / tps / 60 + overhead_min, 1),
        "train": round(max(train_steps, 0) * batch_tokens / tps / 60, 1),
        "evaluate": round(eval_min, 1),
    }
    minutes["total"] = round(sum(minutes.values()), 1)
    cost = round(minutes["total"] / 60 * GPU_DOLLARS_PER_HOUR, 2) if hardware.device == "cuda" else None
    return Estimate(examples=min(examples, max_examples or examples), tokens=tokens, sweep_trials=trials,
                    sweep_steps_per_trial=sweep_steps, train_steps=max(train_steps, 0), tokens_per_step=batch_tokens,
                    minutes=minutes, gpu_cost_usd=cost, max_examples=max_examples)


def source_stats(sources: list[dict[str, Any]]) -> SourceStats:
    """Count documents, words and dataset lines without parsing anything heavy."""
    stats = SourceStats()
    for source in sources:
        kind, location = source["kind"], source["location"]
        if kind == "builtin" and location == "pydoc_data":
            from pydoc_data.topics import topics

            stats.documents += len(topics)
            stats.words += sum(len(t.split()) for t in topics.values())
        elif kind in ("folder", "file", "dataset"):
            path = Path(location)
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
            for file in files[:5000]:
                if file.suffix in (".jsonl", ".csv"):
                    with open(file, "rb") as fh:
                        stats.examples += sum(1 for line in fh if line.strip())
                elif file.suffix in (".md", ".txt", ".rst", ".html", ".htm", ".markdown"):
                    stats.documents += 1
                    stats.words += len(file.read_text(errors="replace").split())
    return stats
