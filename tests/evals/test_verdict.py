"""The verdict: fails when tuned is no better, passes on conforming outputs, says when n is too small."""

from __future__ import annotations

import json

import pytest

from evals.regression import compare, load_suite, score_outputs
from evals.verdict import Criteria, judge_outputs, run_evaluation
from tests.evals.conftest import chat_examples
from tests.evals.style_sets import TOPICS, bulleted_summaries, unstructured
from tools.errors import ToolError


def _conforming(i: int) -> str:
    return (f"Summary: A look at {TOPICS[i % len(TOPICS)]}.\n\nKey points:\n- It is {i}% faster.\n"
            "- It is simpler.\n- It is open.\n\n— Wiki bot")


def _plain(i: int) -> str:
    return f"This paper looks at {TOPICS[i % len(TOPICS)]} and finds it is {i}% faster."


def test_conforming_tuned_outputs_pass_with_significance():
    holdout = chat_examples([_conforming(i + 100) for i in range(12)])
    result = judge_outputs(holdout, [_plain(i) for i in range(12)], [_conforming(i) for i in range(12)],
                           bulleted_summaries(), "style")
    assert result.passed and result.significant, result.reasons
    assert result.primary_metric == "style_conformance"
    assert result.metrics["style_conformance"]["tuned"]["mean"] > 0.9
    assert result.metrics["style_conformance"]["delta"]["low"] > 0
    assert result.style["tuned"]["all_pass"] == 1.0 and result.style["base"]["all_pass"] == 0.0
    assert len(result.samples) == 8 and set(result.samples[0]) == {"input", "base", "tuned", "reference"}
    json.dumps(result.to_dict())


def test_identical_outputs_fail():
    holdout = chat_examples(bulleted_summaries())
    same = [_plain(i) for i in range(len(holdout))]
    result = judge_outputs(holdout, same, same, bulleted_summaries(), "style")
    assert not result.passed and "does not beat base" in result.reasons[0]


def test_small_holdout_does_not_claim_significance():
    holdout = chat_examples([_conforming(i) for i in range(4)])
    result = judge_outputs(holdout, [_plain(i) for i in range(4)], [_conforming(i) for i in range(4)],
                           bulleted_summaries(), "style")
    assert not result.significant and "too small to claim significance" in result.reasons[0]
    assert result.metrics["style_conformance"]["delta"]["small_sample"]


def test_regression_vetoes_an_otherwise_better_model():
    suite = load_suite()
    ones = [1.0] * len(suite)
    base = score_outputs(suite, [i.reference for i in suite], ones, ones)
    broken = score_outputs(suite, [""] * len(suite), ones, ones)
    holdout = chat_examples([_conforming(i + 50) for i in range(12)])
    result = judge_outputs(holdout, [_plain(i) for i in range(12)], [_conforming(i) for i in range(12)],
                           bulleted_summaries(), "style", regression=compare(base, broken))
    assert not result.passed and any(r.startswith("Regression:") for r in result.reasons)


def test_knowledge_uses_token_f1_and_unstructured_style_falls_back_to_rouge():
    answers = [f"The answer is {w}." for w in ("Paris", "Rome", "Oslo", "Bern", "Lima", "Kyiv",
                                                "Doha", "Riga", "Baku", "Suva", "Apia", "Male")]
    holdout = [{"messages": [{"role": "user", "content": f"Capital {i}?"}, {"role": "assistant", "content": a}]}
               for i, a in enumerate(answers)]
    knowledge = judge_outputs(holdout, ["I do not know."] * 12, answers, answers, "knowledge")
    assert knowledge.primary_metric == "token_f1" and knowledge.passed
    assert knowledge.metrics["exact_match"]["tuned"]["mean"] == 1.0
    style = judge_outputs(holdout, ["I do not know."] * 12, answers, unstructured(), "style")
    assert style.primary_metric == "rouge_l" and "no learnable style" in style.reasons[0]


def test_unknown_objective_and_empty_holdout_are_explained():
    with pytest.raises(ToolError, match="objective"):
        judge_outputs(chat_examples(["a"]), ["a"], ["a"], ["a"], "vibes")
    with pytest.raises(ToolError, match="hold-out set is empty"):
        judge_outputs([], [], [], ["a"], "task")
    with pytest.raises(ToolError, match="one reply per hold-out example"):
        judge_outputs(chat_examples(["a", "b"]), ["a"], ["a", "b"], ["a"], "task")
    with pytest.raises(ToolError, match="margin"):
        Criteria(margin=2)


def test_run_evaluation_fails_an_adapter_that_changes_nothing(noisy_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    from tools.models import load_model

    # LoRA starts with B = 0: an untrained adapter is exactly the base model.
    adapter = tmp_path / "adapter"
    get_peft_model(load_model(noisy_model_dir), LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(adapter)
    targets = bulleted_summaries()
    criteria = Criteria(max_new_tokens=6, suite_max_new_tokens=6, samples=3, judge=True)
    result = run_evaluation(noisy_model_dir, adapter, chat_examples(targets), targets, "style", criteria,
                            cache_dir=tmp_path / "cache")
    assert not result.passed and "does not beat base" in result.reasons[0]
    assert result.loss["base"]["nll"] == pytest.approx(result.loss["tuned"]["nll"], rel=1e-4)
    assert not result.regression["regressed"] and len(result.regression["base_items"]) == len(load_suite())
    assert result.wall_seconds > 0 and set(result.timings) >= {"base_generate_s", "tuned_generate_s"}
    # One cache file per model and decoding setting, holding hold-out and suite replies.
    cached = [json.loads(p.read_text())["replies"] for p in (tmp_path / "cache").glob("replies-*.json")]
    assert sorted(len(c) for c in cached) == [len(targets) + len(load_suite())] * 2
    assert result.judge["available"] is False and "OPENAI_BASE_URL" in result.judge["reason"]
    data = json.loads(json.dumps(result.to_dict()))
    assert data["samples"][0]["base"] == data["samples"][0]["tuned"]


def test_a_required_check_failing_fails_the_verdict_even_when_the_mean_rises():
    """The closing line is in every training target: a tuned model that never writes it is not in style."""
    holdout = chat_examples([_conforming(i + 100) for i in range(12)])
    unsigned = [_conforming(i).replace("\n\n— Wiki bot", "\nand so on, and so on") for i in range(12)]
    result = judge_outputs(holdout, [_plain(i) for i in range(12)], unsigned, bulleted_summaries(), "style")
    assert result.metrics["style_conformance"]["delta"]["low"] > 0  # the mean alone would pass it
    assert not result.passed
    assert "closing" in result.style["required"]["failed"]
    assert any("Required check failed" in r and "Wiki bot" in r for r in result.reasons), result.reasons
    # Optional checks (held by fewer than 95 % of targets) never fail the verdict on their own.
    assert set(result.style["required"]["failed"]) <= set(result.style["required"]["checks"])


def test_knowledge_hold_out_is_judged_by_recall_of_its_facts_per_source() -> None:
    from evals.verdict import judge_outputs

    holdout = [{"messages": [{"role": "user", "content": f"When does office {i} open?"},
                             {"role": "assistant", "content": f"Office {i} opens at 7:4{i % 10}."}],
                "meta": {"answer": f"7:4{i % 10}", "source": f"page-{i % 2}.md"}} for i in range(12)]
    tuned = [f"It opens at 7:4{i % 10} on weekdays." if i % 2 == 0 else "I do not know." for i in range(12)]
    base = ["Around nine, probably."] * 12
    result = judge_outputs(holdout, base, tuned, ["x"] * 12, "knowledge")
    assert result.primary_metric == "knowledge_recall"
    assert result.metrics["knowledge_recall"]["tuned"]["mean"] == 0.5
    assert result.metrics["knowledge_recall"]["base"]["mean"] == 0.0
    by_source = result.knowledge["tuned"]["by_source"]
    assert by_source["page-0.md"]["recall"] == 1.0 and by_source["page-1.md"]["recall"] == 0.0
    # Without facts in the hold-out the verdict says so and falls back to token F1.
    plain = [{"messages": ex["messages"]} for ex in holdout]
    fallback = judge_outputs(plain, base, tuned, ["x"] * 12, "knowledge")
    assert fallback.primary_metric == "token_f1" and fallback.knowledge is None
    assert any("knowledge recall cannot be measured" in r for r in fallback.reasons)


def test_knowledge_verdict_needs_a_minimum_recall_not_only_a_gain_over_a_base_that_knows_nothing() -> None:
    from evals.verdict import Criteria, judge_outputs

    holdout = [{"messages": [{"role": "user", "content": f"Which room is desk {i} in?"},
                             {"role": "assistant", "content": f"Desk {i} is in room B{i}."}],
                "meta": {"answer": f"B{i}", "source": "rooms.md"}} for i in range(16)]
    base = ["I am not sure."] * 16
    # 5 of 16: a significant gain over a base that knows none of them, and still not a model that knows the rooms.
    few = [f"It is in room B{i}." if i < 5 else "Room A1." for i in range(16)]
    result = judge_outputs(holdout, base, few, ["x"] * 16, "knowledge")
    assert result.significant and not result.passed
    assert any("needs at least 50%" in r for r in result.reasons), result.reasons
    many = [f"It is in room B{i}." if i < 9 else "Room A1." for i in range(16)]
    assert judge_outputs(holdout, base, many, ["x"] * 16, "knowledge").passed
    assert judge_outputs(holdout, base, few, ["x"] * 16, "knowledge", Criteria(min_recall=0.25)).passed
