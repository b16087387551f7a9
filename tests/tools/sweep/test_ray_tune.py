"""Sweeps on a Ray cluster: the same trials and ranking as a sequential sweep, run as Ray Tune trials."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tools.sweep import Trial, divergence_watch, run_sweep, trial_dir
from tools.sweep.ray_tune import trial_resources


@pytest.fixture(scope="module")
def ray_cluster():
    """One in-process 2-CPU cluster for the module: starting Ray takes ~10 s."""
    from tools.sweep.ray_tune import connect

    started = connect("local", num_cpus=2)
    import ray

    yield ray
    if started:
        ray.shutdown()


def _write_data(root: Path) -> tuple[Path, Path]:
    rows = [{"messages": [{"role": "user", "content": f"summary of paper {i}?"},
                          {"role": "assistant", "content": "- the method is good\n- the result is a list"}]}
            for i in range(24)]
    root.mkdir()
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    return root / "train.jsonl", root / "val.jsonl"


def test_real_sweep_runs_as_ray_tune_trials_ranked_by_val_loss(ray_cluster, tiny_model_dir, tmp_path, monkeypatch):
    train_path, val_path = _write_data(tmp_path / "data")
    monkeypatch.setenv("INGRAIN_RAY_ADDRESS", "local")

    def run_trial(trial: Trial):
        from tools.train.config import TrainConfig
        from tools.train.trainer import train

        out = trial_dir(tmp_path, trial)
        out.mkdir(parents=True, exist_ok=True)
        (out / "pid").write_text(str(os.getpid()))
        config = TrainConfig(max_steps=10, batch_size=4, max_length=128, eval_steps=10, save_steps=10,
                             early_stopping_patience=0, warmup_ratio=0.0, dropout=0.0, **trial.overrides)
        return train(config, tiny_model_dir, train_path, val_path, out, progress=False, on_log=divergence_watch())

    # A: too gentle to move; B: learns the format; C: full fine-tuning at a rate that blows the loss up;
    # D: an invalid configuration, which fails before training.
    result = run_sweep([{"name": "A", "lr": 1e-5}, {"name": "B", "lr": 5e-3},
                        {"name": "C", "lr": 100.0, "method": "full"}, {"name": "D", "lr": -1.0}], run_trial)

    assert result.executor == "ray at local"
    by_name = {t.name: t for t in result.trials}
    assert [t.name for t in result.trials] == ["A", "B", "C", "D"]
    assert by_name["C"].status == "diverged" and by_name["C"].val_loss is None and "loss went" in by_name["C"].error
    assert by_name["D"].status == "failed" and "lr=-1.0" in by_name["D"].error
    ok = [t for t in result.trials if t.status == "ok"]
    assert {t.name for t in ok} == {"A", "B"}
    assert result.ranking == [t.name for t in sorted(ok, key=lambda t: t.val_loss)] == ["B", "A"]
    assert result.winner == "B" and "lowest validation loss" in result.reason
    assert all(t.loss_curve and t.wall_seconds is not None and t.tokens_per_s for t in ok)
    # The trials trained in Ray's worker processes, not in this one.
    pids = {int((trial_dir(tmp_path, by_name[n]) / "pid").read_text()) for n in "ABC"}
    assert os.getpid() not in pids


def test_without_an_address_the_sweep_runs_here_one_trial_after_another(ray_cluster, monkeypatch):
    monkeypatch.delenv("INGRAIN_RAY_ADDRESS", raising=False)
    ran_in: list[int] = []

    def run_trial(trial: Trial) -> SimpleNamespace:
        ran_in.append(os.getpid())
        return SimpleNamespace(best_val_loss=trial.overrides["lr"] * 1000, final_train_loss=1.0, tokens_per_s=5.0,
                               output_dir="/tmp/x")

    result = run_sweep([{"name": "A", "lr": 5e-4}, {"name": "B", "lr": 2e-4}], run_trial)
    assert result.executor == "sequential" and result.to_dict()["executor"] == "sequential"
    assert ran_in == [os.getpid(), os.getpid()]
    assert result.ranking == ["B", "A"]


def test_trials_get_a_gpu_each_or_share_the_cpus() -> None:
    assert trial_resources({"CPU": 16, "GPU": 4}, 3) == ({"cpu": 1, "gpu": 1}, 3)
    assert trial_resources({"CPU": 16, "GPU": 2}, 3) == ({"cpu": 1, "gpu": 1}, 2)
    assert trial_resources({"CPU": 2}, 3) == ({"cpu": 2}, 1)
    assert trial_resources({"CPU": 8}, 3) == ({"cpu": 2}, 3)
    assert trial_resources({"CPU": 1}, 3) == ({"cpu": 1}, 1)
    # Eight one-core nodes: a trial cannot span nodes, so each takes one core.
    assert trial_resources({"CPU": 8}, 5, largest_node_cpus=1) == ({"cpu": 1}, 5)
