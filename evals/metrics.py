"""Hold-out metrics: assistant-token loss, ROUGE-L, SQuAD exact match / token F1, bootstrap intervals."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from tools.errors import ToolError
from tools.text import normalize_answer as normalize_answer  # re-exported: evaluation reads them here
from tools.text import token_f1 as token_f1

if TYPE_CHECKING:
    from evals.generate import LoadedModel

SMALL_SAMPLE = 10
"""Below this many values an interval is flagged: it says little, and no significance is claimed."""


@dataclass(frozen=True)
class ConfidenceInterval:
    """A mean with a bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int
    """Number of values the mean is over."""
    confidence: float
    small_sample: bool
    """True when n < SMALL_SAMPLE: the interval was widened and should not be read as significant."""

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def bootstrap_ci(values: Sequence[float], n: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> ConfidenceInterval:
    """Percentile bootstrap interval of the mean, expanded for small samples.

    The plain percentile bootstrap is too narrow for small n; the expanded version (Hesterberg 2015)
    replaces alpha/2 by Φ(-sqrt(n/(n-1)) · t_{1-alpha/2, n-1}), which matches a t interval's width.
    """
    if not values:
        raise ToolError("No values to average: the hold-out set produced no scores; "
                        "check that it is not empty.")
    if not 0 < confidence < 1:
        raise ToolError(f"confidence={confidence} must be between 0 and 1 (e.g. 0.95).")
    import numpy as np

    data = np.asarray(values, dtype=float)
    size = len(data)
    mean = float(data.mean())
    if size == 1:
        return ConfidenceInterval(mean, mean, mean, 1, confidence, True)
    alpha = 1 - confidence
    tail = NormalDist().cdf(-math.sqrt(size / (size - 1)) * t_quantile(1 - alpha / 2, size - 1))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, size, size=(n, size))].mean(axis=1)
    low, high = np.quantile(means, [tail, 1 - tail])
    return ConfidenceInterval(mean, float(low), float(high), size, confidence, size < SMALL_SAMPLE)


def paired_diff_ci(base: Sequence[float], tuned: Sequence[float], n: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> ConfidenceInterval:
    """Interval of mean(tuned - base) over the same items; pairing removes the between-item spread."""
    if len(base) != len(tuned):
        raise ToolError(f"Cannot pair {len(base)} base scores with {len(tuned)} tuned scores: "
                        "score both models on the same hold-out items.")
    diffs = [t - b for b, t in zip(base, tuned, strict=True)]
    return bootstrap_ci(diffs, n=n, seed=seed, confidence=confidence)


@lru_cache(maxsize=64)
def t_quantile(p: float, df: int) -> float:
    """Student-t quantile by bisection on a Simpson-integrated density (no scipy dependency)."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float, steps: int = 2000) -> float:
        h = x / steps
        total = 0.0
        for i in range(steps + 1):
            weight = 1 if i in (0, steps) else (4 if i % 2 else 2)
            total += weight * math.exp(log_norm - (df + 1) / 2 * math.log1p((i * h) ** 2 / df))
        return 0.5 + total * h / 3

    low, high = 0.0, 1.0
    while cdf(high) < p:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of stemmed words)."""
    return float(_rouge_scorer().score(reference, prediction)["rougeL"].fmeasure)


@dataclass(frozen=True)
class TargetLoss:
    """Summed negative log-likelihood of one reference reply under a model."""

    nll: float
    tokens: int

    @property
    def mean(self) -> float:
        return self.nll / self.tokens if self.tokens else float("nan")


def target_losses(loaded: LoadedModel, examples: Sequence[dict[str, Any]], batch_size: int = 8,
                  max_length: int = 1024) -> list[TargetLoss]:
    """NLL of each example's final assistant reply (plus its end marker), given the turns before it.

    Only the reply tokens are scored: the prompt is context, as in assistant-only training.
    """
    import torch

    from evals.generate import thread_budget

    tokenizer = loaded.tokenizer
    rows = [_scored_ids(loaded, ex, max_length) for ex in examples]
    results: list[TargetLoss] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk])
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk])
        labels = torch.tensor([[t if i >= first else -100 for i, t in enumerate(ids)]
                               + [-100] * (width - len(ids)) for ids, first in chunk])
        with torch.inference_mode(), thread_budget(loaded.model):
            logits = loaded.model(input_ids=input_ids, attention_mask=attention).logits.float()
        shifted, targets = logits[:, :-1], labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(shifted.transpose(1, 2), targets, ignore_index=-100,
                                                   reduction="none")
        counted = (targets != -100).sum(dim=1)
        results.extend(TargetLoss(float(s), int(c)) for s, c in zip(losses.sum(dim=1), counted, strict=True))
    return results


def _scored_ids(loaded: LoadedModel, example: dict[str, Any], max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt + reply + end marker, and the index where the scored reply starts."""
    from evals.generate import render_prompt

    messages = example["messages"]
    if not messages or messages[-1]["role"] != "assistant":
        raise ToolError("A hold-out example does not end with an assistant reply: each example needs the "
                        "reference answer as its last message to score loss against.")
    tokenizer = loaded.tokenizer
    prompt = tokenizer(render_prompt(tokenizer, messages[:-1]), add_special_tokens=False)["input_ids"]
    reply = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
    # The end marker is part of the target: stopping on time is part of the learned behaviour.
    vocab = tokenizer.get_vocab()
    end = [vocab["<|im_end|>"]] if "<|im_end|>" in vocab else [tokenizer.eos_token_id]
    reply = (reply + end)[: max(1, max_length // 2)]
    prompt = prompt[-(max_length - len(reply)):]
    return prompt + reply, len(prompt)


def loss_summary(losses: Sequence[TargetLoss]) -> dict[str, float]:
    """Token-weighted mean NLL and its perplexity over a set of targets."""
    tokens = sum(item.tokens for item in losses)
    nll = sum(item.nll for item in losses) / tokens if tokens else float("nan")
    return {"nll": nll, "perplexity": math.exp(min(nll, 50.0)), "tokens": tokens}
