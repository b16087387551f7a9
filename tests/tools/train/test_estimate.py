"""The planner's arithmetic: one epoch per sweep trial, the rest of the budget to training, a true minimum."""

from __future__ import annotations

from evals.regression import RESAMPLES, load_suite
from tools.train.estimate import REGRESSION_SUITE_PROMPTS, SUITE_RESAMPLES, Hardware, Speeds, plan_budget, row_length

CPU = Hardware("cpu", 2, False)
SLOW = Speeds(train_tokens_per_s=100.0, generate_tokens_per_s=35.0, run_overhead_s=25.0)


def test_small_data_gets_short_rows_and_many_steps_per_epoch() -> None:
    # 80 examples of ~75 tokens: 1024-token rows would make an epoch 5 optimizer steps. 12 minutes leave room
    # for every example (evaluation decodes the 36-prompt regression suite twice, about 4.4 minutes here).
    est = plan_budget(examples=80, tokens_per_example=75, budget_minutes=12, trials=2, hardware=CPU, speeds=SLOW)
    assert est.max_examples is None and est.row_tokens < 1024 and est.steps_per_epoch >= 16
    assert est.sweep_steps_per_trial == est.steps_per_epoch  # each trial sees the data once
    assert est.train_steps >= 2 * est.steps_per_epoch  # the winner trains for several epochs
    assert abs(est.minutes["total"] - 12) < 0.3  # the budget is spent, not left over
    assert row_length(6000) == 320 and row_length(10**6) == 1024 and row_length(100, longest_example=700) == 704


def test_minimum_budget_is_true_when_the_budget_is_too_small() -> None:
    tight = plan_budget(examples=80, tokens_per_example=75, budget_minutes=3, trials=2, hardware=CPU, speeds=SLOW)
    assert tight.train_steps < tight.steps_per_epoch and tight.sweep_trials == 1
    enough = plan_budget(examples=80, tokens_per_example=75, budget_minutes=tight.min_budget_minutes, trials=2,
                         hardware=CPU, speeds=SLOW)
    assert enough.train_steps >= enough.steps_per_epoch
    # The figure is not padded either: a minute less leaves no epoch for training.
    short = plan_budget(examples=80, tokens_per_example=75, budget_minutes=tight.min_budget_minutes - 1.5,
                        trials=2, hardware=CPU, speeds=SLOW)
    assert short.train_steps < short.steps_per_epoch


def test_corrections_from_the_last_run_scale_their_steps() -> None:
    plain = plan_budget(examples=200, tokens_per_example=90, budget_minutes=20, trials=2, hardware=CPU, speeds=SLOW)
    slower_eval = Speeds(**{**SLOW.to_dict(), "corrections": {"evaluate": 1.5}})
    corrected = plan_budget(examples=200, tokens_per_example=90, budget_minutes=20, trials=2, hardware=CPU,
                            speeds=slower_eval)
    assert abs(corrected.minutes["evaluate"] - plain.minutes["evaluate"] * 1.5) < 0.02
    assert corrected.minutes["train"] < plain.minutes["train"]


def test_large_data_is_sampled_down_and_gpu_runs_are_costed() -> None:
    est = plan_budget(examples=5000, tokens_per_example=90, budget_minutes=12, trials=2, hardware=CPU, speeds=SLOW)
    assert est.max_examples is not None and est.examples == est.max_examples < 5000
    gpu = plan_budget(examples=40, tokens_per_example=90, budget_minutes=60, trials=3,
                      hardware=Hardware("cuda", 8, True))
    assert gpu.gpu_cost_usd is not None and gpu.gpu_cost_usd > 0 and gpu.max_examples is None


def test_evaluate_time_counts_every_regression_suite_prompt() -> None:
    assert REGRESSION_SUITE_PROMPTS == len(load_suite()) >= 36


def test_a_guarded_run_plans_its_suite_checks_in_training_and_its_resampled_verdict() -> None:
    plain = plan_budget(examples=200, tokens_per_example=90, budget_minutes=20, trials=2, hardware=CPU, speeds=SLOW)
    guarded = plan_budget(examples=200, tokens_per_example=90, budget_minutes=20, trials=2, hardware=CPU,
                          speeds=SLOW, guarded=True)
    assert guarded.minutes["evaluate"] > plain.minutes["evaluate"]
    assert guarded.train_steps < plain.train_steps  # the same minutes hold fewer steps: each score checks the suite
    assert abs(guarded.minutes["total"] - 20) < 0.3
    assert SUITE_RESAMPLES == RESAMPLES
