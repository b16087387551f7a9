"""A fast read of the objective's metric on a few validation examples, used to rank sweep trials."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.generate import generate_replies
from evals.style import style_profile
from evals.verdict import PRIMARY_METRIC, holdout_scores


def objective_score(base_dir: Path, trained_dir: Path, examples: Sequence[dict[str, Any]], objective: str,
                    train_targets: Sequence[str], *, max_new_tokens: int = 64) -> float | None:
    """Mean of the objective's metric (0–1, higher is better) for a trial's outputs; None when unmeasurable."""
    if not examples or not Path(trained_dir).exists():
        return None
    adapter = Path(trained_dir)
    model: Any = (Path(base_dir), adapter) if (adapter / "adapter_config.json").is_file() else adapter
    outputs = generate_replies(model, [ex["messages"][:-1] for ex in examples], max_new_tokens=max_new_tokens,
                               batch_size=len(examples))
    profile = style_profile(train_targets)
    scores = holdout_scores([ex["messages"][-1]["content"] for ex in examples], outputs, profile)
    values = scores.get(PRIMARY_METRIC.get(objective, "rouge_l")) or scores["rouge_l"]
    return sum(values) / len(values)
