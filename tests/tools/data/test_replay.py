"""Replay prompts: general, disjoint from the regression suite, turned into chat examples."""

from __future__ import annotations

import json
from pathlib import Path

from tools.data.replay import replay_count, replay_examples, replay_prompts

SUITE = Path(__file__).resolve().parents[3] / "evals" / "regression_suite.jsonl"


def test_replay_prompts_never_repeat_the_regression_suite() -> None:
    suite = {json.loads(line)["prompt"].lower() for line in SUITE.read_text().splitlines() if line.strip()}
    prompts = [p[0]["content"].lower() for p in replay_prompts()]
    assert len(prompts) >= 30 and not suite & set(prompts)


def test_replay_examples_pair_prompts_with_replies_and_drop_empty_ones() -> None:
    prompts = replay_prompts(3)
    examples = replay_examples(prompts, ["Thirteen.", "  ", "Rome."])
    assert [e["messages"][-1] for e in examples] == [{"role": "assistant", "content": "Thirteen."},
                                                     {"role": "assistant", "content": "Rome."}]
    assert examples[0]["messages"][0] == prompts[0][0]


def test_replay_share_is_a_quarter_within_bounds() -> None:
    assert replay_count(8) == 4
    assert replay_count(80) == 20
    assert replay_count(10_000) == len(replay_prompts())
