"""Metrics on known strings, bootstrap intervals, and assistant-only loss on the tiny model."""

from __future__ import annotations

import math
import random

import pytest

from evals.generate import load_for_eval
from evals.metrics import (
    bootstrap_ci,
    exact_match,
    loss_summary,
    normalize_answer,
    paired_diff_ci,
    rouge_l,
    t_quantile,
    target_losses,
    token_f1,
)
from tools.errors import ToolError


def test_squad_normalisation_exact_match_and_f1():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert exact_match("the eiffel tower.", "Eiffel Tower") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0
    assert token_f1("The cat sat", "a cat sat down") == pytest.approx(0.8)
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "cat") == 0.0


def test_rouge_l_on_known_strings():
    assert rouge_l("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert rouge_l("alpha beta", "gamma delta") == 0.0
    assert rouge_l("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)


def test_t_quantile_matches_tables():
    assert t_quantile(0.975, 1) == pytest.approx(12.706, abs=1e-2)
    assert t_quantile(0.975, 4) == pytest.approx(2.776, abs=1e-3)
    assert t_quantile(0.975, 100) == pytest.approx(1.984, abs=1e-3)


def test_bootstrap_ci_contains_the_mean_and_widens_for_small_n():
    rng = random.Random(7)
    values = [rng.gauss(0.5, 0.2) for _ in range(200)]
    large = bootstrap_ci(values[:100], seed=1)
    small = bootstrap_ci(values[100:105], seed=1)
    for ci in (large, small):
        assert ci.low <= ci.mean <= ci.high
    assert (small.high - small.low) > 2 * (large.high - large.low)
    assert small.small_sample and not large.small_sample
    assert bootstrap_ci(values[:100], seed=1) == large
    single = bootstrap_ci([0.3])
    assert single.low == single.high == 0.3 and single.small_sample


def test_bootstrap_ci_covers_a_known_mean_most_of_the_time():
    rng = random.Random(3)
    covered = sum(ci.low <= 0.5 <= ci.high for ci in
                  (bootstrap_ci([rng.gauss(0.5, 0.3) for _ in range(8)], n=400, seed=s) for s in range(60)))
    # The expanded interval targets 95%; allow for 60 trials and bootstrap noise.
    assert covered >= 51


def test_paired_difference_and_errors():
    diff = paired_diff_ci([0.1, 0.2, 0.3, 0.4] * 5, [0.3, 0.4, 0.5, 0.6] * 5)
    assert diff.mean == pytest.approx(0.2) and diff.excludes_zero()
    with pytest.raises(ToolError, match="same hold-out items"):
        paired_diff_ci([0.1], [0.1, 0.2])
    with pytest.raises(ToolError, match="empty"):
        bootstrap_ci([])


def test_target_loss_scores_only_the_reply(tiny_model_dir):
    import torch

    loaded = load_for_eval(tiny_model_dir)
    reply = "the model returns a list"
    short = {"messages": [{"role": "user", "content": "what"}, {"role": "assistant", "content": reply}]}
    long = {"messages": [{"role": "system", "content": "you are a helpful model " * 5},
                         {"role": "user", "content": "what does the function return"},
                         {"role": "assistant", "content": reply}]}
    losses = target_losses(loaded, [short, long], batch_size=2)
    reply_tokens = len(loaded.tokenizer(reply, add_special_tokens=False)["input_ids"]) + 1
    assert [item.tokens for item in losses] == [reply_tokens, reply_tokens]
    # Same numbers as the model's own loss with the prompt masked out (padding must not leak in).
    for example, item in zip([short, long], losses, strict=True):
        ids = torch.tensor([loaded.tokenizer(
            loaded.tokenizer.apply_chat_template(example["messages"][:-1], tokenize=False,
                                                 add_generation_prompt=True) + reply + "<|im_end|>",
            add_special_tokens=False)["input_ids"]])
        labels = ids.clone()
        labels[:, : ids.shape[1] - reply_tokens] = -100
        with torch.no_grad():
            expected = loaded.model(input_ids=ids, labels=labels).loss.item()
        assert item.mean == pytest.approx(expected, rel=1e-4)
    summary = loss_summary(losses)
    # A random 512-token model is close to uniform: NLL near ln(512).
    assert summary["nll"] == pytest.approx(math.log(512), abs=0.7)
    assert summary["perplexity"] == pytest.approx(math.exp(summary["nll"]))


def test_target_loss_needs_a_reference_reply(tiny_model_dir):
    loaded = load_for_eval(tiny_model_dir)
    with pytest.raises(ToolError, match="reference answer"):
        target_losses(loaded, [{"messages": [{"role": "user", "content": "hi"}]}])
