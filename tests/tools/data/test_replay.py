"""Replay prompts: general, disjoint from the regression suite, turned into chat examples."""

from __future__ import annotations

import json
from pathlib import Path

from tools.data.replay import replay_count, replay_examples, replay_prompts, write_replay_examples
from tools.data.split import read_jsonl

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


def test_replay_share_is_half_within_bounds() -> None:
    assert replay_count(4) == 4
    assert replay_count(40) == 20
    assert replay_count(10_000) == len(replay_prompts())


def test_write_replay_examples_asks_for_the_replay_share_and_writes_what_came_back(tmp_path: Path) -> None:
    asked: list[int] = []

    def reply(prompts: list) -> list[str]:  # a stand-in for the base model, not for the code under test
        asked.append(len(prompts))
        return ["" if i == 0 else f"Reply {i}." for i in range(len(prompts))]

    result = write_replay_examples(reply, 40, tmp_path / "replay.jsonl")
    assert asked == [replay_count(40)] == [result.n_prompts]
    written = read_jsonl(result.path)
    assert result.n_examples == len(written) == replay_count(40) - 1
    assert written[0]["messages"][-1] == {"role": "assistant", "content": "Reply 1."}
