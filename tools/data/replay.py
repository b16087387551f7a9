"""Replay data: the base model's own answers to general prompts, mixed into training to limit forgetting.

A LoRA that sees only a narrow style also learns to answer "What is 7 + 5?" in that style. Training on a
small share of the base model's replies to unrelated general prompts keeps its general behaviour in place
(self-distillation replay). The prompts here are disjoint from the evaluation's regression suite.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.data.split import write_jsonl

Prompt = list[dict[str, str]]
REPLAY_PROMPTS = Path(__file__).with_name("replay_prompts.jsonl")


@dataclass
class ReplaySet:
    """What `write_replay_examples` wrote."""

    path: str
    """The replay examples, one chat per line."""
    n_prompts: int
    """General prompts the base model answered."""
    n_examples: int
    """Examples kept (empty replies are dropped)."""

    def to_dict(self) -> dict:
        return asdict(self)


def write_replay_examples(reply: Callable[[list[Prompt]], list[str]], n_train: int, out_path: Path | str) -> ReplaySet:
    """Ask the base model (`reply`: prompts in, replies out) the replay prompts for `n_train` task examples
    and write its answers as chat examples to `out_path`."""
    prompts = replay_prompts(replay_count(n_train))
    examples = replay_examples(prompts, reply(prompts))
    write_jsonl(out_path, examples)
    return ReplaySet(str(out_path), len(prompts), len(examples))


def replay_prompts(limit: int | None = None) -> list[Prompt]:
    """General chat prompts (no system message: the model's default one applies, as for most users)."""
    rows = [json.loads(line) for line in REPLAY_PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [[{"role": "user", "content": row["prompt"]}] for row in rows[:limit]]


def replay_examples(prompts: list[Prompt], replies: list[str]) -> list[dict]:
    """Chat examples from prompts and the base model's replies; empty replies are dropped."""
    return [{"messages": [*prompt, {"role": "assistant", "content": reply.strip()}]}
            for prompt, reply in zip(prompts, replies, strict=True) if reply.strip()]


def replay_count(n_train: int, share: float = 0.5) -> int:
    """How many replay examples to mix into `n_train` task examples (about half on top).

    A quarter let an 80-example style LoRA at lr 1e-3 raise the regression suite's reference NLL by 0.55
    nats/token, past the verdict's limit; the replay set is small, so half costs little time.
    """
    return min(len(replay_prompts()), max(4, int(n_train * share)))
