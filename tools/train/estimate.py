"""Plan arithmetic: how big the data will be, how long each step takes on this hardware, what it costs."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.data.extract import estimate_words
from tools.data.sources import is_dataset_file, is_document_file

# Defaults when neither a calibration nor a lesson is at hand: fp32 LoRA on SmolLM2-135M inside the graph on
# 2 AVX2 cores (TRL with the CPU loss, packed rows) did 70-140 tok/s; batched greedy decoding ~35 tok/s.
DEFAULT_TRAIN_TOKENS_PER_S = {"cpu": 70.0, "cuda": 20000.0}
DEFAULT_GENERATE_TOKENS_PER_S = {"cpu": 35.0, "cuda": 2000.0}
# Per training run beyond its steps: loading the model, building the packed data, the final validation pass.
DEFAULT_RUN_OVERHEAD_S = {"cpu": 25.0, "cuda": 20.0}
TOKENS_PER_EXAMPLE = 90
REGRESSION_SUITE_FILE = Path(__file__).resolve().parents[2] / "evals" / "regression_suite.jsonl"


def _count_suite_prompts(path: Path = REGRESSION_SUITE_FILE, default: int = 36) -> int:
    """Non-blank lines of the general regression suite, counted without importing the evals package."""
    try:
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()) or default
    except OSError:
        return default


REGRESSION_SUITE_PROMPTS = _count_suite_prompts()
"""Prompts the evaluate step decodes on base and tuned alike: one per line of evals/regression_suite.jsonl."""
SUITE_NEW_TOKENS = 64
"""Token cap on a regression-suite answer; evals.regression.SUITE_MAX_NEW_TOKENS is this constant."""
GOAL_SAMPLE = 8
"""Validation examples the goal metric is scored on during training and in the sweep."""
MIN_STEPS_PER_EPOCH = 16
"""Small data sets get shorter packed rows so one epoch is still this many optimizer steps."""
DEPLOY_S = 6.0
"""Merge, f16 GGUF copy and registry for a 135M model: 3-7.6 s measured (actual/estimate 0.3-0.76 at 10 s)."""
EVALUATE_SLACK = 1.2
"""Evaluation also scores losses and loads two models: five first runs here took 0.93-1.45 (mean 1.18) of the
decode-only estimate, so it is scaled by their mean; the timing lesson refines it per machine."""
SUITE_RESAMPLES = 8
"""Sampled answers per changed suite item when a greedy pass-rate drop is checked again (evals.regression)."""
RESAMPLED_SHARE = 0.15
"""Expected share of the suite's items answered SUITE_RESAMPLES times more in a run that learns facts, by the
weights in training and by base and tuned in evaluation: the changed items, when the pass-rate rule flags their
greedy drop. In two CI-sized knowledge runs 10 of 36 items changed and were flagged, at every check and in the
verdict; in a third, 6 changed and nothing was flagged (its evaluation took 50 s, the others' 106 and 118 s)."""
REPLAY_REPLY_SHARE = 0.5
"""The base's replies to the replay prompts end at about half the token cap on average: prepare took
0.34-0.59 of an estimate that decoded every reply to the cap, in four measured runs."""
GPU_DOLLARS_PER_HOUR = 1.2
STEPS = ("plan", "prepare", "sweep", "train", "evaluate", "deploy")
"""The plan's timed steps; actual times come from the trace (prepare = gather + build_data)."""


@dataclass
class Hardware:
    """What this machine trains on."""

    device: str
    """cpu | cuda."""
    cores: int
    """CPU cores available to this process."""
    bf16: bool
    """Whether bf16 math is fast here."""
    name: str = ""
    """CPU model or GPU name: timing lessons apply only to the same hardware."""

    def key(self) -> str:
        return f"{self.device}|{self.name}|{self.cores}|{'bf16' if self.bf16 else 'fp32'}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_hardware() -> Hardware:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if torch.cuda.is_available():
        return Hardware("cuda", cores, torch.cuda.is_bf16_supported(), torch.cuda.get_device_name(0))
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "")
    return Hardware("cpu", cores, "avx512_bf16" in flags or "amx_bf16" in flags, name)


@dataclass
class SourceStats:
    """A cheap look at the sources before anything is read in full."""

    documents: int = 0
    words: int = 0
    examples: int = 0
    """Examples in given dataset files (line count for JSONL)."""
    example_chars: int = 0
    longest_example_chars: int = 0

    def tokens_per_example(self) -> float:
        """A JSONL chat line has about 3.3 characters per templated token (SmolLM2, system prompt included:
        measured 3.4 on prose answers, 2.8 on JSON answers); JSON's keys and quotes make up for the template."""
        if not self.examples:
            return float(TOKENS_PER_EXAMPLE)
        return self.example_chars / self.examples / 3.3

    def longest_example_tokens(self) -> int:
        return int(self.longest_example_chars / 3.3) if self.examples else 256


@dataclass
class Speeds:
    """How fast this machine trains and generates with one base model, and where the figures came from."""

    train_tokens_per_s: float
    generate_tokens_per_s: float
    """Aggregate tokens/s of batched greedy decoding (all sequences together)."""
    run_overhead_s: float
    """Seconds per training run beyond its steps (load, data, final validation)."""
    source: str = "default"
    """calibrated | lesson | default."""
    corrections: dict[str, float] = field(default_factory=dict)
    """Per step: actual / estimated time in the last run on this base and hardware (1.0 = spot on)."""
    calibration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_speeds(device: str) -> Speeds:
    return Speeds(DEFAULT_TRAIN_TOKENS_PER_S[device], DEFAULT_GENERATE_TOKENS_PER_S[device],
                  DEFAULT_RUN_OVERHEAD_S[device])


@dataclass
class Estimate:
    """Sizes and times the plan gate shows."""

    examples: int
    tokens: int
    sweep_trials: int
    sweep_steps_per_trial: int
    train_steps: int
    """Upper bound: training stops earlier when the goal metric plateaus or its time is up."""
    row_tokens: int = 1024
    """Packed row length; shorter for small data sets so an epoch has enough optimizer steps."""
    steps_per_epoch: int = 1
    epochs: float = 0.0
    score_every: int = 10
    """Score the goal metric every N training steps."""
    minutes: dict[str, float] = field(default_factory=dict)
    """Per step (plan, prepare, sweep, train, evaluate, deploy) and total."""
    max_examples: int | None = None
    """Cap on examples the budget can train for about three epochs (None: no cap needed)."""
    min_budget_minutes: float = 0.0
    """The smallest budget that trains each sweep trial and the winner for at least one epoch."""
    gpu_cost_usd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_length(tokens_per_epoch: int, longest_example: int = 256, *, cap: int = 1024) -> int:
    """Packed row tokens: short enough for MIN_STEPS_PER_EPOCH steps an epoch, long enough for one example."""
    wanted = tokens_per_epoch // MIN_STEPS_PER_EPOCH // 64 * 64
    return int(min(cap, max(256, wanted, math.ceil(longest_example / 64) * 64)))


MIN_EPOCHS = 3
"""The winner should see its data about this many times; bigger data sets are sampled down to fit."""
MIN_SAMPLED_EXAMPLES = 40


def plan_budget(*, examples: int, tokens_per_example: float, budget_minutes: float, trials: int,
                hardware: Hardware, speeds: Speeds | None = None, holdout: int = 12, eval_new_tokens: int = 128,
                replay_prompts: int = 24, longest_example: int = 256, max_row: int = 1024,
                guarded: bool = False) -> Estimate:
    """Split a wall-time budget over the run's steps from measured speeds.

    Every sweep trial gets one epoch; the winner gets what is left after evaluation and deploy are reserved
    (it stops earlier when the goal metric plateaus). Data too big for one epoch per trial plus MIN_EPOCHS
    for the winner is sampled down. Steps are corrected by the last run's actual / estimate. `guarded`: training
    also checks kept weights against the regression suite (knowledge goals), and both it and the verdict answer
    the changed items again by sampling.
    """
    speeds = speeds or default_speeds(hardware.device)
    fix = {step: min(2.0, max(0.5, speeds.corrections.get(step, 1.0))) for step in STEPS}
    gen, tps, overhead = speeds.generate_tokens_per_s, speeds.train_tokens_per_s, speeds.run_overhead_s
    reply_tokens = min(160, int(tokens_per_example * 0.7) + 24)
    # Rows decoded to the suite's cap when the changed items are answered again by sampling.
    resampled = RESAMPLED_SHARE * REGRESSION_SUITE_PROMPTS * SUITE_RESAMPLES * SUITE_NEW_TOKENS if guarded else 0.0
    score_s = GOAL_SAMPLE * reply_tokens / gen + 1.0
    # Training checks kept weights against the suite about twice, the first that would be kept and those it
    # stops with (tools.train.goal_stop), and answers it with the base once: three suite answerings.
    checks_s = 3 * (REGRESSION_SUITE_PROMPTS * SUITE_NEW_TOKENS + resampled) / gen * EVALUATE_SLACK if guarded else 0.0
    n_eval = min(32, max(holdout, 1))
    seconds = {
        "plan": speeds.calibration_s * fix["plan"],
        "prepare": (5.0 + replay_prompts * SUITE_NEW_TOKENS * REPLAY_REPLY_SHARE / gen) * fix["prepare"],
        # Base and tuned on the hold-out (the base runs to the cap, the tuned model about its targets' length)
        # and on the regression suite, plus loading both models.
        "evaluate": ((n_eval * (eval_new_tokens + reply_tokens) + 2 * REGRESSION_SUITE_PROMPTS * SUITE_NEW_TOKENS
                      + 2 * resampled) / gen + 0.8 * overhead) * EVALUATE_SLACK * fix["evaluate"],
        "deploy": DEPLOY_S * fix["deploy"],
    }
    fixed = sum(seconds.values())

    def shape(n: int) -> tuple[int, int, int, float]:
        """tokens per epoch, row length, steps per epoch, seconds per epoch for n examples."""
        tokens = max(1, int(max(1, int(n * 0.8)) * tokens_per_example))
        row = row_length(tokens, longest_example, cap=max_row)
        steps = max(1, math.ceil(tokens / row))
        return tokens, row, steps, steps * row / tps

    def sweep_s(n_trials: int, epoch_s: float) -> float:
        return n_trials * (overhead + epoch_s + score_s) * fix["sweep"]

    pool = budget_minutes * 60 - fixed
    tokens_per_epoch, row, steps_per_epoch, epoch_s = shape(examples)
    max_examples = None
    room = pool - sweep_s(trials, 0) - overhead * fix["train"]
    if room < (trials * fix["sweep"] + MIN_EPOCHS * fix["train"]) * epoch_s and examples > MIN_SAMPLED_EXAMPLES:
        # Sample the data down so each trial sees it once and the winner about MIN_EPOCHS times.
        affordable_s = max(room, 0.0) / (trials * fix["sweep"] + MIN_EPOCHS * fix["train"])
        capped = max(MIN_SAMPLED_EXAMPLES, int(examples * affordable_s / epoch_s))
        if capped < examples:
            max_examples = capped
            tokens_per_epoch, row, steps_per_epoch, epoch_s = shape(capped)
    one_epoch = (overhead + epoch_s + score_s + checks_s) * fix["train"]
    while trials > 1 and pool - sweep_s(trials, epoch_s) < one_epoch:
        trials -= 1
    min_budget = math.ceil((fixed + sweep_s(1, epoch_s) + one_epoch) / 60 + 0.5)
    train_seconds = max(pool - sweep_s(trials, epoch_s), 0.0)
    score_every = max(2, min(20, steps_per_epoch))
    per_step = row / tps + score_s / score_every
    train_steps = max(0, int((train_seconds / fix["train"] - overhead - checks_s) / per_step))
    seconds["sweep"] = sweep_s(trials, epoch_s)
    seconds["train"] = train_seconds
    minutes = {k: round(v / 60, 2) for k, v in seconds.items()}
    minutes["total"] = round(sum(minutes.values()), 1)
    cost = round(minutes["total"] / 60 * GPU_DOLLARS_PER_HOUR, 2) if hardware.device == "cuda" else None
    return Estimate(examples=max_examples or examples, tokens=tokens_per_epoch, sweep_trials=trials,
                    sweep_steps_per_trial=steps_per_epoch, train_steps=train_steps,
                    row_tokens=row, steps_per_epoch=steps_per_epoch, epochs=round(train_steps / steps_per_epoch, 1),
                    score_every=score_every, minutes=minutes, max_examples=max_examples,
                    min_budget_minutes=float(min_budget), gpu_cost_usd=cost)


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
                if is_dataset_file(file) and file.suffix.lower() in (".jsonl", ".csv", ".tsv"):  # one row a line
                    with open(file, "rb") as fh:
                        for line in fh:
                            if line.strip():
                                stats.examples += 1
                                stats.example_chars += len(line)
                                stats.longest_example_chars = max(stats.longest_example_chars, len(line))
                elif is_document_file(file):
                    stats.documents += 1
                    stats.words += estimate_words(file)  # PDF and Word files are not text
    return stats
