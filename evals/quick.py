"""Fast reads of the objective's metric on a few validation examples: to rank sweep trials, and to steer
training (score every few steps, keep the best, stop on a plateau)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evals.generate import LoadedModel, generate_replies, generate_token_ids, stop_token_ids
from evals.style import style_profile
from evals.verdict import PRIMARY_METRIC, holdout_scores
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
    scores = holdout_scores([ex["messages"][-1]["content"] for ex in examples], outputs, profile)
    values = scores.get(PRIMARY_METRIC.get(objective, "rouge_l")) or scores["rouge_l"]
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
                *, max_new_tokens: int | None = None) -> Callable[[Any, Any], float]:
    """A (model, tokenizer) → metric function for the model being trained, generating in memory, greedy."""
    prompts = [ex["messages"][:-1] for ex in examples]
    budget = {"tokens": max_new_tokens}

    def score(model: Any, tokenizer: Any) -> float:
        if budget["tokens"] is None:  # the tokenizer arrives with the first call
            budget["tokens"] = reply_budget(tokenizer, [ex["messages"][-1]["content"] for ex in examples])
        side = tokenizer.padding_side
        try:
            loaded = LoadedModel(model, tokenizer, "in-training", "in-training", stop_token_ids(tokenizer))
            ids = generate_token_ids(loaded, prompts, max_new_tokens=budget["tokens"], batch_size=len(prompts))
        finally:
            tokenizer.padding_side = side  # the training collator pads on its own side
        outputs = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]
        return mean_objective(examples, outputs, objective, train_targets)

    return score
