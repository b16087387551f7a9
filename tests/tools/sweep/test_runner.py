"""Sweep ranking: validation loss first, the objective's metric decides when they disagree; divergence."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from tools.sweep import Trial, TrialDiverged, check_divergence, default_grid, divergence_watch, rank, run_sweep


def test_default_grid_has_k_named_trials_starting_with_the_field_default() -> None:
    grid = default_grid(500, k=3)
    assert [g["name"] for g in grid] == ["A", "B", "C"]
    assert grid[0]["lr"] == 2e-4 and grid[0]["r"] == 16
    assert len({(g["lr"], g.get("r"), g.get("method")) for g in grid}) == 3


def test_grid_reads_lessons_and_feedback() -> None:
    lessons = [{"topic": "sweep", "data": {"winner_overrides": {"lr": 3e-4, "r": 8, "alpha": 8}}}]
    grid = default_grid(500, lessons=lessons, feedback="try lr 1e-5 with 2 trials")
    assert grid[0]["lr"] == 1e-5
    assert grid[1] == {"name": "B", "lr": 3e-4, "r": 8, "alpha": 8}
    assert len(grid) == 2


def test_knowledge_goals_get_one_memorising_trial_and_only_knowledge_lessons() -> None:
    style_lesson = {"topic": "sweep", "data": {"winner_overrides": {"lr": 2e-4, "r": 8}, "objective": "style"}}
    grid = default_grid(300, lessons=[style_lesson], objective="knowledge")
    assert grid == [{"name": "A", "lr": 1e-3, "r": 16, "alpha": 32}]  # a style run's winner is not a fact recipe
    fact_lesson = {"topic": "sweep", "data": {"winner_overrides": {"lr": 5e-4, "r": 32}, "objective": "knowledge"}}
    assert default_grid(300, lessons=[style_lesson, fact_lesson], objective="knowledge")[0]["lr"] == 5e-4
    assert [g["lr"] for g in default_grid(300, feedback="3 trials", objective="knowledge")] == [1e-3, 5e-4, 2e-4]
    other = default_grid(300, lessons=[style_lesson])  # other goals: three trials, any run's lesson first
    assert len(other) == 3 and other[0]["r"] == 8


def test_small_datasets_do_not_get_full_fine_tuning() -> None:
    assert all(g.get("method") != "full" for g in default_grid(50, k=5))
    assert any(g.get("method") == "full" for g in default_grid(5000, k=5))


def _trial(name: str, loss: float, metric: float | None = None) -> Trial:
    return Trial(name, {}, status="ok", val_loss=loss, metric=metric)


def test_rank_by_validation_loss() -> None:
    result = rank([_trial("A", 2.0), _trial("B", 1.5), _trial("C", 1.8)])
    assert result.winner == "B" and result.ranking == ["B", "C", "A"]
    assert "lowest validation loss" in result.reason


def test_metric_overrides_loss_when_they_disagree() -> None:
    result = rank([_trial("A", 1.2, metric=0.0), _trial("B", 1.4, metric=0.83)])
    assert result.winner == "B"
    assert "metric decides" in result.reason


def test_small_metric_differences_do_not_override_loss() -> None:
    assert rank([_trial("A", 1.2, metric=0.50), _trial("B", 1.4, metric=0.55)]).winner == "A"


def test_divergence_detection() -> None:
    check_divergence([2.0, 1.9, 1.7])
    # A replay-heavy first batch (low loss) then a task batch (high loss) is not divergence.
    check_divergence([1.16, 4.69, 4.2, 3.9, 3.5])
    with pytest.raises(TrialDiverged):
        check_divergence([2.0, 1.9, math.nan])
    with pytest.raises(TrialDiverged):
        check_divergence([2.0, 3.0, 9.0, 13.0])


def test_run_sweep_marks_diverged_trials_and_suggests_a_lower_rate_when_all_fail() -> None:
    def run_trial(trial: Trial) -> SimpleNamespace:
        if trial.overrides["lr"] > 1e-3:
            check_divergence([2.0, float("inf")])
        return SimpleNamespace(best_val_loss=trial.overrides["lr"] * 1000, final_train_loss=1.0, tokens_per_s=5.0,
                               output_dir="/tmp/x")

    result = run_sweep([{"name": "A", "lr": 5e-4}, {"name": "B", "lr": 5e-3}], run_trial)
    statuses = {t.name: t.status for t in result.trials}
    assert statuses == {"A": "ok", "B": "diverged"} and result.winner == "A"
    failed = run_sweep([{"name": "A", "lr": 5e-3}], run_trial)
    assert failed.winner is None and "lower learning rate" in failed.reason


def test_real_sweep_on_the_tiny_model_ranks_by_val_loss_and_stops_a_diverging_trial(tiny_model_dir, tmp_path):
    import json

    from tools.sweep import trial_dir
    from tools.train.config import TrainConfig
    from tools.train.trainer import train

    rows = [{"messages": [{"role": "user", "content": f"summary of paper {i}?"},
                          {"role": "assistant", "content": "- the method is good\n- the result is a list"}]}
            for i in range(24)]
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))

    def run_trial(trial: Trial):
        config = TrainConfig(max_steps=12, batch_size=4, max_length=128, eval_steps=6, save_steps=6,
                             early_stopping_patience=0, warmup_ratio=0.0, dropout=0.0, **trial.overrides)
        return train(config, tiny_model_dir, data / "train.jsonl", data / "val.jsonl", trial_dir(tmp_path, trial),
                     progress=False, on_log=divergence_watch())

    # A: too gentle to move; B: learns the format; C: full fine-tuning at a rate that blows the loss up
    # (LoRA alone cannot: the final norm bounds the logits while adapters run wild).
    result = run_sweep([{"name": "A", "lr": 1e-5}, {"name": "B", "lr": 5e-3},
                        {"name": "C", "lr": 100.0, "method": "full"}], run_trial)
    by_name = {t.name: t for t in result.trials}
    assert by_name["C"].status == "diverged" and by_name["C"].val_loss is None
    assert by_name["A"].status == by_name["B"].status == "ok"
    assert by_name["B"].val_loss < by_name["A"].val_loss
    assert result.winner == "B" and result.ranking == ["B", "A"]
