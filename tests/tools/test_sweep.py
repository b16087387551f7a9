"""Sweep ranking: validation loss first, the objective's metric decides when they disagree; divergence."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from tools.sweep import Trial, TrialDiverged, check_divergence, default_grid, rank, run_sweep


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
    with pytest.raises(TrialDiverged):
        check_divergence([2.0, 1.9, math.nan])
    with pytest.raises(TrialDiverged):
        check_divergence([2.0, 3.0, 9.0])


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
