"""The general regression suite: its checks, and detection of a damaged model through pass rate and NLL."""

from __future__ import annotations

import json

import pytest

from evals.regression import (
    RegressionComparison,
    check_output,
    compare,
    grounded_suite,
    load_suite,
    lost_and_gained,
    pass_rate_regressed,
    resampled_regressed,
    run_regression,
    sampled_passes,
    score_outputs,
    sign_test_p,
)
from tests.evals.conftest import perturbed_copy
from tools.errors import ToolError


def test_suite_covers_the_categories_and_references_pass_their_own_checks():
    suite = load_suite()
    assert {"instructions", "arithmetic", "reasoning", "safety", "general"} == {i.category for i in suite}
    assert len({i.id for i in suite}) == len(suite) >= 36
    failing = [i.id for i in suite if not check_output(i, i.reference)]
    assert failing == []


def test_checks_reject_wrong_answers():
    suite = {i.id: i for i in load_suite()}
    assert not check_output(suite["one-word-sky"], "The sky is blue.")
    assert not check_output(suite["uppercase-greeting"], "Hello team!")
    assert not check_output(suite["list-three-fruits"], "- Apple\n- Banana")
    assert not check_output(suite["add-7-5"], "7 + 5 = 13")
    assert check_output(suite["add-7-5"], "twelve")
    assert not check_output(suite["refuse-bomb"], "Sure! First, get a pipe.")
    assert check_output(suite["refuse-bomb"], "Sorry, I can't help with that.")


def test_lost_and_gained_name_the_items_that_changed_each_way():
    suite = load_suite()[:4]
    lost, gained = lost_and_gained(suite, [True, True, False, False], [True, False, True, False])
    assert lost == [suite[1].id] and gained == [suite[2].id]


def test_compare_flags_a_pass_rate_drop_from_constructed_outputs():
    suite = load_suite()
    nll, tokens = [2.0] * len(suite), [4] * len(suite)
    base = score_outputs(suite, [i.reference for i in suite], nll, tokens)
    assert base.pass_rate == 1.0 and base.mean_nll == pytest.approx(0.5)
    damaged = score_outputs(suite, [""] * len(suite), nll, tokens)
    result = compare(base, damaged, threshold=0.1)
    assert result.regressed and "pass rate fell" in result.reasons[0]
    assert set(result.lost) == {i.id for i in suite} and result.gained == []
    assert not compare(base, base).regressed
    json.dumps(result.to_dict())


def test_a_pass_rate_drop_counts_only_when_losses_outnumber_gains_beyond_chance():
    suite = load_suite()
    nll, tokens = [2.0] * len(suite), [4] * len(suite)
    base_out = [i.reference if n < 20 else "" for n, i in enumerate(suite)]  # the base passes 20 of 36

    def tuned(lose: int, gain: int) -> RegressionComparison:
        out = ["" if n < lose else o for n, o in enumerate(base_out)]
        out[20:20 + gain] = [i.reference for i in suite[20:20 + gain]]
        return compare(score_outputs(suite, base_out, nll, tokens), score_outputs(suite, out, nll, tokens))

    assert sign_test_p(8, 1) == pytest.approx(10 / 512) and sign_test_p(0, 0) == 1.0
    noise = tuned(lose=4, gain=1)  # 8 points down, but 4 of 5 changes one way is common by chance
    assert noise.pass_rate_drop > 0.08 and not noise.regressed
    churn = tuned(lose=6, gain=1)  # 14 points down, p = 0.06
    assert churn.pass_rate_drop > 0.1 and churn.regressed and "sign test p = 0.06" in churn.reasons[0]
    assert tuned(lose=8, gain=1).regressed
    assert not tuned(lose=3, gain=3).regressed
    # The rule on its own (the in-training guard asks it of counts) decides as compare does.
    for lose, gain in ((4, 1), (5, 1), (6, 1), (8, 1), (3, 3), (4, 0), (3, 0)):
        assert pass_rate_regressed(lose, gain, len(suite)) == tuned(lose, gain).regressed, (lose, gain)


def test_a_greedy_drop_stands_only_if_the_changed_items_sampled_answers_fall_too():
    suite = load_suite()
    nll, tokens = [2.0] * len(suite), [4] * len(suite)
    base_out = [i.reference if n < 20 else "" for n, i in enumerate(suite)]
    tuned_out = ["" if n < 6 else o for n, o in enumerate(base_out)]  # greedy: lost 6, gained 0
    base, tuned = score_outputs(suite, base_out, nll, tokens), score_outputs(suite, tuned_out, nll, tokens)
    asked: list[list[str]] = []

    def resample(base_counts: list[int], tuned_counts: list[int]):
        def counts(ids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
            asked.append(ids)
            return dict(zip(ids, base_counts, strict=True)), dict(zip(ids, tuned_counts, strict=True))
        return counts

    # Knife-edge items: the base passed them in 2-4 of 8 samples, the tuned model about as often.
    chance = compare(base, tuned, resample=resample([2, 3, 4, 2, 3, 4], [1, 3, 4, 3, 2, 4]))
    assert asked == [sorted(i.id for i in suite[:6])]
    assert not chance.regressed and chance.lost and "sampled 8 times" in chance.notes[0]
    assert chance.resampled["base"][asked[0][0]] == 2
    # Items the base passes nearly always, now nearly never: the drop stands, with the counts in the reason.
    real = compare(base, tuned, resample=resample([8, 7, 8, 8, 7, 8], [0, 1, 0, 2, 0, 1]))
    assert real.regressed and "sampled 8 times" in real.reasons[0] and not real.notes
    # No greedy drop, nothing resampled.
    asked.clear()
    assert not compare(base, base, resample=resample([], [])).regressed and asked == []
    json.dumps(real.to_dict())


def test_the_resampled_rule_weighs_shares_over_the_whole_suite():
    ids = [f"i{n}" for n in range(6)]
    fall = dict.fromkeys(ids, 8)
    assert resampled_regressed(fall, dict.fromkeys(ids, 0), 36)  # 48 of 288 sampled passes gone
    assert not resampled_regressed(fall, dict.fromkeys(ids, 6), 36)  # 12 of 288: 4 points
    assert not resampled_regressed(dict.fromkeys(ids, 4), dict.fromkeys(ids, 4), 36)
    # Large falls on a few items against rises on as many are not a one-way change.
    mixed = {**dict.fromkeys(ids[:3], 0), **dict.fromkeys(ids[3:], 8)}
    assert not resampled_regressed(dict.fromkeys(ids, 4), mixed, 10)


def test_sampled_passes_are_counts_per_item_and_repeat_with_the_seed(tiny_model_dir):
    items = load_suite()[:3]
    first = sampled_passes(tiny_model_dir, items, samples=3, max_new_tokens=4)
    assert list(first) == [i.id for i in items] and all(0 <= n <= 3 for n in first.values())
    assert sampled_passes(tiny_model_dir, items, samples=3, max_new_tokens=4) == first
    assert sampled_passes(tiny_model_dir, [], samples=3) == {}


def test_damaged_tiny_model_is_a_regression_through_nll(tiny_model_dir, tmp_path):
    damaged_dir = perturbed_copy(tiny_model_dir, tmp_path / "damaged", scale=0.5, seed=1)
    suite = load_suite()[:6]
    base = run_regression(tiny_model_dir, suite=suite, max_new_tokens=4)
    damaged = run_regression(damaged_dir, suite=suite, max_new_tokens=4)
    # A random model passes nothing either way; the reference NLL is what moves.
    assert damaged.mean_nll > base.mean_nll + 1.0
    result = compare(base, damaged)
    assert result.regressed and any("NLL" in r for r in result.reasons)
    assert not compare(base, run_regression(tiny_model_dir, suite=suite, max_new_tokens=4)).regressed


@pytest.mark.real_model
def test_noised_smollm2_regresses_against_itself(smollm2_dir):
    import torch

    from evals.generate import load_for_eval

    suite = load_suite()[::2]
    loaded = load_for_eval(smollm2_dir)
    base = run_regression(loaded, suite=suite, max_new_tokens=8)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in loaded.model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.02)
    damaged = run_regression(loaded, suite=suite, max_new_tokens=8)
    result = compare(base, damaged)
    assert result.regressed, result.to_dict()
    assert damaged.mean_nll > base.mean_nll + 0.5


@pytest.mark.real_model
def test_a_damaged_smollm2_still_regresses_when_its_changed_items_are_sampled(smollm2_dir):
    import torch

    from evals.generate import load_for_eval

    suite = load_suite()
    items = {i.id: i for i in suite}
    loaded = load_for_eval(smollm2_dir)
    base = run_regression(loaded, suite=suite, max_new_tokens=32)
    generator = torch.Generator().manual_seed(0)
    # Damage well past the line (measured: greedy pass rate 44 % -> 11 %): at 1.5 % noise (44 -> 19 %) the sampled
    # drop was 27 passes of 288 against the 28.8 the rule needs in one draw, 10 % and more in another.
    with torch.no_grad():
        for param in loaded.model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.02)
    damaged = run_regression(loaded, suite=suite, max_new_tokens=32)

    def resample(ids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
        return (sampled_passes(smollm2_dir, [items[i] for i in ids], max_new_tokens=32),
                sampled_passes(loaded, [items[i] for i in ids], max_new_tokens=32))

    result = compare(base, damaged, resample=resample)
    assert result.regressed and "sampled 8 times" in result.reasons[0], result.to_dict()
    base_counts, tuned_counts = result.resampled["base"], result.resampled["tuned"]
    assert sum(base_counts.values()) - sum(tuned_counts.values()) > 0.1 * 8 * len(suite)


def test_bad_suite_file_says_which_line(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text('{"id": "x", "category": "c", "prompt": "p", "reference": "r", "check": {"type": "nope"}}\n')
    with pytest.raises(ToolError, match="unknown check type"):
        load_suite(path)
    path.write_text('{"id": "x"}\n')
    with pytest.raises(ToolError, match=r"suite.jsonl:1"):
        load_suite(path)


def test_a_grounded_suite_gets_excerpts_only_where_its_sources_are_near(tmp_path) -> None:
    from tools.data.chunk import Chunk
    from tools.grounding import HEADER, GroundingIndex

    text = "The sky over the harbour is blue on a clear day. Apples and cherries grow in the orchard."
    index = GroundingIndex.build([Chunk(text, "notes.md", "Notes", "Notes", 0, 20, "notes")], tmp_path)
    suite = load_suite()
    grounded = grounded_suite(suite, index)
    assert [(i.id, i.check, i.reference) for i in grounded] == [(i.id, i.check, i.reference) for i in suite]
    changed = {i.id for i, g in zip(suite, grounded, strict=True) if g.prompt != i.prompt}
    assert "one-word-sky" in changed and len(changed) < len(suite) // 2
    for item, ground in zip(suite, grounded, strict=True):
        if item.id in changed:
            assert ground.prompt.startswith(HEADER) and ground.prompt.endswith("\n\n" + item.prompt)
