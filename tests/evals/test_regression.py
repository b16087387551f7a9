"""The general regression suite: its checks, and detection of a damaged model through pass rate and NLL."""

from __future__ import annotations

import json

import pytest

from evals.regression import (
    RegressionComparison,
    check_output,
    compare,
    load_suite,
    lost_and_gained,
    pass_rate_regressed,
    run_regression,
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


def test_bad_suite_file_says_which_line(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text('{"id": "x", "category": "c", "prompt": "p", "reference": "r", "check": {"type": "nope"}}\n')
    with pytest.raises(ToolError, match="unknown check type"):
        load_suite(path)
    path.write_text('{"id": "x"}\n')
    with pytest.raises(ToolError, match=r"suite.jsonl:1"):
        load_suite(path)
