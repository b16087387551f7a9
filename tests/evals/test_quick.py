"""The in-training goal scorer: the objective's metric, less whatever the model drifted from its base."""

from __future__ import annotations

import pytest

from evals.quick import goal_scorer, suite_guard


def test_goal_scorer_measures_drift_against_the_adapter_free_base_and_takes_it_off(tiny_model_dir) -> None:
    from peft import LoraConfig, get_peft_model

    from evals.generate import load_for_eval
    from evals.regression import reference_nll
    from tools.models import load_model, load_tokenizer

    model = get_peft_model(load_model(tiny_model_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                  task_type="CAUSAL_LM")).eval()
    tokenizer = load_tokenizer(tiny_model_dir)
    examples = [{"messages": [{"role": "user", "content": f"note {i}"},
                              {"role": "assistant", "content": "- noted\n- that is all"}]} for i in range(4)]
    targets = [ex["messages"][-1]["content"] for ex in examples]
    # A fresh LoRA (B = 0) is its base: the rise is zero and, within the allowance, nothing is taken off.
    value, details = goal_scorer(examples, "style", targets, nll_allowance=0.0)(model, tokenizer)
    assert abs(details["nll_rise"]) < 1e-3 and details["penalty"] == 0
    assert value == pytest.approx(details["goal"], abs=1e-3)
    assert details["base_nll"] == pytest.approx(reference_nll(load_for_eval(tiny_model_dir)), abs=1e-3)
    # Every nat per token of rise past the allowance comes off the score (a negative allowance makes any
    # model "too far": the base here is 0.5 past it).
    value, details = goal_scorer(examples, "style", targets, nll_allowance=-0.5)(model, tokenizer)
    assert details["penalty"] == pytest.approx(0.5, abs=1e-3)
    assert value == pytest.approx(details["goal"] - 0.5, abs=2e-3)
    # Past the verdict's own limit a checkpoint would fail whatever its metric: a whole point more comes off.
    value, details = goal_scorer(examples, "style", targets, nll_allowance=-0.5, nll_limit=-0.2)(model, tokenizer)
    assert details["penalty"] == pytest.approx(1.5, abs=1e-3)
    assert value == pytest.approx(details["goal"] - 1.5, abs=2e-3)


def test_suite_guard_answers_the_suite_as_the_verdict_does(tiny_model_dir) -> None:
    from peft import LoraConfig, get_peft_model

    from evals.regression import run_regression
    from tools.models import load_model, load_tokenizer

    model = get_peft_model(load_model(tiny_model_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                  task_type="CAUSAL_LM")).eval()
    tokenizer = load_tokenizer(tiny_model_dir)
    # A fresh LoRA is its base: nothing lost or gained, and its pass rate is the verdict's for the base.
    guard = suite_guard(threshold=0.1)
    checked = guard(model, tokenizer)
    assert (checked["suite_lost"], checked["suite_gained"], checked["suite_regressed"]) == (0, 0, False)
    # The base's answers are worked out at the first check only, and its time is told apart.
    assert checked["base_seconds"] > 0 and guard(model, tokenizer)["base_seconds"] < checked["base_seconds"] / 2
    assert checked["suite_pass"] == pytest.approx(run_regression(tiny_model_dir).pass_rate, abs=1e-4)
    # A drop the rule flags (forced here by a rule that flags anything) is checked again on sampled answers:
    # weights equal to the base's answer the same samples, so the sampled pass rate did not fall at all.
    resampled = suite_guard(threshold=-1.0, alpha=1.01)(model, tokenizer)
    assert resampled["suite_resampled_drop"] == 0.0
    # A model without an adapter has no base in memory and is not checked.
    assert suite_guard(threshold=0.1)(load_model(tiny_model_dir), tokenizer) == {}
