"""Fast reads of the objective's metric on a few validation examples: to rank sweep trials, and to steer
training (score every few steps, keep the best, stop on a plateau)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evals.generate import BATCH_ROWS, LoadedModel, generate_replies, generate_token_ids, stop_token_ids
from evals.regression import (
    RESAMPLES,
    SIGN_TEST_ALPHA,
    SUITE_MAX_NEW_TOKENS,
    grounded_suite,
    load_suite,
    lost_and_gained,
    pass_rate_regressed,
    reference_nll,
    resampled_regressed,
    sampled_passes,
    suite_passes,
)
from evals.style import style_profile
from evals.verdict import PRIMARY_METRIC, holdout_facts, holdout_scores
from tools.grounding import GroundingIndex
from tools.models import is_adapter_dir

# Room past the longest target: a reply that runs on past its closing line must show it to be scored down.
OVERRUN_TOKENS = 24


def reply_budget(tokenizer: Any, targets: Sequence[str], *, cap: int = 160) -> int:
    """New tokens a scored reply may take: the longest target plus room to see it run past its end."""
    longest = max((len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets), default=48)
    return max(16, min(cap, longest + OVERRUN_TOKENS))


def mean_objective(examples: Sequence[dict[str, Any]], outputs: Sequence[str], objective: str,
                   train_targets: Sequence[str]) -> float:
    """Mean of the objective's primary metric (0–1), as the verdict computes it."""
    profile = style_profile(train_targets)
    scores = holdout_scores([ex["messages"][-1]["content"] for ex in examples], outputs, profile,
                            holdout_facts(examples))
    fallback = scores["token_f1"] if objective == "knowledge" else scores["rouge_l"]
    values = scores.get(PRIMARY_METRIC.get(objective, "rouge_l")) or fallback
    return sum(values) / len(values)


def objective_score(base_dir: Path, trained_dir: Path, examples: Sequence[dict[str, Any]], objective: str,
                    train_targets: Sequence[str], *, max_new_tokens: int = 64) -> float | None:
    """Mean of the objective's metric (0–1, higher is better) for a trial's outputs; None when unmeasurable."""
    if not examples or not Path(trained_dir).exists():
        return None
    adapter = Path(trained_dir)
    model: Any = (Path(base_dir), adapter) if is_adapter_dir(adapter) else adapter
    outputs = generate_replies(model, [ex["messages"][:-1] for ex in examples], max_new_tokens=max_new_tokens,
                               batch_size=len(examples))
    return mean_objective(examples, outputs, objective, train_targets)


def goal_scorer(examples: Sequence[dict[str, Any]], objective: str, train_targets: Sequence[str],
                *, max_new_tokens: int | None = None, nll_allowance: float | None = None,
                nll_limit: float | None = None) -> Callable[[Any, Any], tuple[float, dict[str, Any]]]:
    """A (model, tokenizer) → (score, details) function for the model being trained, generating in memory.

    With `nll_allowance`, a LoRA model's reference NLL on the regression suite is measured too (the base's
    once, with the adapter switched off) and every nat per token of rise beyond the allowance is taken off
    the score: the best checkpoint is then the one that learned the goal without forgetting what the
    verdict's regression check will ask of it. Past `nll_limit` (the verdict's own limit) a checkpoint would
    fail the verdict whatever its metric, so a whole point more comes off: any checkpoint within the limit
    then ranks above it (measured: without this, a checkpoint 0.6 nats past the base won on a perfect label
    score and failed the regression check).
    """
    prompts = [ex["messages"][:-1] for ex in examples]
    budget: dict[str, Any] = {"tokens": max_new_tokens, "base_nll": None}

    def drift(model: Any, loaded: LoadedModel) -> dict[str, Any]:
        if nll_allowance is None or not hasattr(model, "disable_adapter"):
            return {}
        if budget["base_nll"] is None:
            with model.disable_adapter():
                budget["base_nll"] = reference_nll(loaded)
        rise = reference_nll(loaded) - budget["base_nll"]
        beyond = 1.0 if nll_limit is not None and rise > nll_limit else 0.0
        return {"base_nll": round(budget["base_nll"], 4), "nll_rise": round(rise, 3),
                "penalty": round(max(0.0, rise - nll_allowance) + beyond, 3)}

    def score(model: Any, tokenizer: Any) -> tuple[float, dict[str, Any]]:
        if budget["tokens"] is None:  # the tokenizer arrives with the first call
            budget["tokens"] = reply_budget(tokenizer, [ex["messages"][-1]["content"] for ex in examples])
        side = tokenizer.padding_side
        try:
            loaded = LoadedModel(model, tokenizer, "in-training", "in-training", stop_token_ids(tokenizer))
            ids = generate_token_ids(loaded, prompts, max_new_tokens=budget["tokens"], batch_size=len(prompts))
            details = drift(model, loaded)
        finally:
            tokenizer.padding_side = side  # the training collator pads on its own side
        outputs = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]
        metric = mean_objective(examples, outputs, objective, train_targets)
        return metric - details.get("penalty", 0.0), {"goal": round(metric, 4), **details}

    return score


def suite_guard(*, threshold: float, alpha: float = SIGN_TEST_ALPHA,
                max_new_tokens: int = SUITE_MAX_NEW_TOKENS, batch_size: int = BATCH_ROWS,
                grounding: GroundingIndex | None = None) -> Callable[[Any, Any], dict[str, Any]]:
    """A (model, tokenizer) → {"suite_regressed": bool, ...} check of a LoRA model being trained: would the
    verdict's pass-rate rule fail these weights on the general regression suite?

    The verdict fails a model whose suite pass rate falls, not only one whose reference NLL rises, and the pass
    rate fell first in knowledge runs (a checkpoint at +0.50 nats, inside its allowance, answered 39 % against
    the base's 56 % and failed). Greedy answers are generated as the verdict generates them (the same cap and
    batch), the base's once with the adapter switched off, and judged by the verdict's own rule: the verdict
    then decodes the merged weights, and in two knowledge runs its items lost and gained matched the guard's
    exactly. A whole-suite generation costs about six training steps, so it is asked only of weights about to
    be kept. A drop the rule flags is checked again as the verdict checks it, on the changed items' sampled
    answers (the base's counted once per item). A model without an adapter to switch off has no base in
    memory to compare with: nothing is checked. With `grounding` the weights in training are asked the suite with
    its excerpts, as the verdict asks the tuned model (the base as it is served, without).
    """
    suite = load_suite()
    asked = grounded_suite(suite, grounding) if grounding is not None else suite
    memo: dict[str, Any] = {"base": None, "sampled": {}}

    def guard(model: Any, tokenizer: Any) -> dict[str, Any]:
        if not hasattr(model, "disable_adapter"):
            return {}
        side = tokenizer.padding_side
        base_started = time.perf_counter()
        try:
            loaded = LoadedModel(model, tokenizer, "in-training", "in-training", stop_token_ids(tokenizer))
            if memo["base"] is None:
                with model.disable_adapter():
                    memo["base"] = suite_passes(loaded, suite, max_new_tokens=max_new_tokens, batch_size=batch_size)
            base_seconds = time.perf_counter() - base_started
            tuned = suite_passes(loaded, asked, max_new_tokens=max_new_tokens, batch_size=batch_size)
            lost, gained = lost_and_gained(suite, memo["base"], tuned)
            details = {"suite_pass": round(sum(tuned) / len(suite), 4), "suite_lost": len(lost),
                       "suite_gained": len(gained)}
            regressed = pass_rate_regressed(len(lost), len(gained), len(suite), threshold, alpha)
            if regressed:  # checked again as the verdict checks it: on the changed items' sampled answers
                changed = [item for item in suite if item.id in set(lost + gained)]
                missing = [item for item in changed if item.id not in memo["sampled"]]
                started = time.perf_counter()
                with model.disable_adapter():
                    memo["sampled"].update(sampled_passes(loaded, missing, max_new_tokens=max_new_tokens,
                                                          batch_size=batch_size))
                base_seconds += time.perf_counter() - started
                base_counts = {item.id: memo["sampled"][item.id] for item in changed}
                tuned_counts = sampled_passes(loaded, [item for item in asked if item.id in set(lost + gained)],
                                              max_new_tokens=max_new_tokens, batch_size=batch_size)
                regressed = resampled_regressed(base_counts, tuned_counts, len(suite), threshold=threshold,
                                                alpha=alpha)
                details["suite_resampled_drop"] = round(
                    sum(base_counts[i] - tuned_counts[i] for i in base_counts) / (RESAMPLES * len(suite)), 4)
        finally:
            tokenizer.padding_side = side
        # The base's answers are worked out once: a check of other weights costs the rest (GoalStop's reserve).
        return {**details, "suite_regressed": regressed, "base_seconds": round(base_seconds, 3)}

    return guard
