"""Training steered by the goal metric: scored every few steps, best weights kept, stops on plateau or deadline."""

from __future__ import annotations

import time
from types import SimpleNamespace

from safetensors.torch import load_file

from tests.tools.train.test_trainer import fast_config
from tools.train.goal_stop import GoalStop, GoalStopCallback, GoalTrace, keep_best
from tools.train.trainer import train


class Weights:
    """What the callback touches of a model: its train/eval switch."""

    training = True

    def eval(self) -> None:
        self.training = False

    def train(self) -> None:
        self.training = True


def _weights(folder) -> dict:
    return load_file(str(folder / "adapter_model.safetensors"))


def test_plateau_stops_training_and_the_best_scoring_weights_are_kept(tiny_model_dir, repetitive_data, tmp_path):
    scores = iter([0.2, 0.6, 0.4, 0.5, 0.55, 0.3, 0.3, 0.3])
    seen: list[int] = []

    def score(model, tokenizer) -> float:
        assert not model.training  # scored as the endpoint generates: eval mode
        seen.append(1)
        return next(scores)

    out = tmp_path / "out"
    result = train(fast_config(max_steps=40), tiny_model_dir, *repetitive_data, out, progress=False,
                   goal=GoalStop(score=score, every=4, patience=3, best_dir=out / "best"))
    assert [p["step"] for p in result.goal_curve] == [4, 8, 12, 16, 20]
    assert result.steps == 20 and result.stop_reason.startswith("goal metric flat")
    assert (result.best_goal_metric, result.best_goal_step) == (0.6, 8)
    # The final weights (step 20) were replaced by the ones saved when the metric peaked (step 8).
    kept, best = _weights(out / "adapter"), _weights(out / "best")
    assert kept.keys() == best.keys() and all((kept[k] == best[k]).all() for k in kept)


def test_a_metric_still_at_zero_is_not_a_plateau(tiny_model_dir, repetitive_data, tmp_path):
    result = train(fast_config(max_steps=24), tiny_model_dir, *repetitive_data, tmp_path / "out", progress=False,
                   goal=GoalStop(score=lambda m, t: 0.0, every=4, patience=2))
    assert result.steps == 24 and result.stop_reason == "max_steps"
    assert len(result.goal_curve) == 6


def test_a_deadline_stops_training_at_the_next_step(tiny_model_dir, repetitive_data, tmp_path):
    result = train(fast_config(max_steps=200), tiny_model_dir, *repetitive_data, tmp_path / "out", progress=False,
                   goal=GoalStop(score=lambda m, t: 0.5, every=50, deadline=time.time() - 1))
    assert result.steps == 1 and result.stop_reason == "deadline"
    assert [p["step"] for p in result.goal_curve] == [1]  # the weights it stops with are still scored


def test_training_continues_from_earlier_weights(tiny_model_dir, repetitive_data, tmp_path):
    first = train(fast_config(max_steps=6), tiny_model_dir, *repetitive_data, tmp_path / "a", progress=False)
    second = train(fast_config(max_steps=2, lr=1e-9), tiny_model_dir, *repetitive_data, tmp_path / "b",
                   progress=False, init_from=first.weights_path)
    assert second.init_from == first.weights_path
    # With a vanishing rate the continued adapter stays the first one, not a fresh (zero-B) LoRA.
    start, after = _weights(tmp_path / "a" / "adapter"), _weights(tmp_path / "b" / "adapter")
    assert any(float(start[k].abs().sum()) > 0 for k in start if "lora_B" in k)
    assert all((start[k] - after[k]).abs().max() < 1e-4 for k in start)


def test_a_flat_metric_is_no_plateau_while_the_validation_loss_falls() -> None:
    scores = iter([0.2, 0.5, 0.5, 0.5, 0.5, 0.6, 0.6, 0.6, 0.6])
    callback = GoalStopCallback(GoalStop(score=lambda m, t: next(scores), patience=3), tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    # The best score (step 2) comes before the first validation loss; the loss then keeps falling.
    for step, loss in zip(range(1, 6), [None, None, 2.0, 1.5, 1.0], strict=True):
        callback._score(Weights(), step, control, loss)
    assert not control.should_training_stop
    # A new best at loss 0.9, then three flat scores whose loss no longer falls: a plateau.
    for step, loss in ((6, 0.9), (7, 0.899), (8, 0.898)):
        callback._score(Weights(), step, control, loss)
    assert not control.should_training_stop
    callback._score(Weights(), 9, control, 0.897)
    assert control.should_training_stop and callback.trace.stop_reason.startswith("goal metric flat")


def test_a_perfect_sample_stops_training_once_the_validation_loss_no_longer_falls() -> None:
    callback = GoalStopCallback(GoalStop(score=lambda m, t: 1.0, patience=3), tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    # Perfect from the first score, but the loss on the validation questions still falls: still learning.
    for step, loss in zip(range(1, 5), [0.6, 0.14, 0.04, 0.02], strict=True):
        callback._score(Weights(), step, control, loss)
        assert not control.should_training_stop, step
    callback._score(Weights(), 5, control, 0.0199)  # perfect twice and the loss flat: met
    assert control.should_training_stop and callback.trace.stop_reason == "goal met on the validation sample"
    # Without a validation loss, two perfect scores are enough.
    callback = GoalStopCallback(GoalStop(score=lambda m, t: 1.0), tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    callback._score(Weights(), 1, control, None)
    callback._score(Weights(), 2, control, None)
    assert control.should_training_stop


def test_a_perfect_sample_is_not_met_at_the_first_validation_loss() -> None:
    callback = GoalStopCallback(GoalStop(score=lambda m, t: 1.0, patience=3), tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    callback._score(Weights(), 17, control, None)  # scored before any validation
    callback._score(Weights(), 34, control, 0.31)  # the first loss: nothing to tell whether it still falls
    assert not control.should_training_stop
    callback._score(Weights(), 51, control, 0.1)  # still falling
    assert not control.should_training_stop
    callback._score(Weights(), 68, control, 0.099)  # flat: met
    assert control.should_training_stop and callback.trace.stop_reason == "goal met on the validation sample"


def test_a_falling_loss_buys_no_time_once_the_model_drifted_past_its_allowance() -> None:
    # The metric peaks at step 1; later checkpoints learn more (the loss falls) but are scored down for drift.
    scores = iter([(0.9, {"goal": 0.9, "penalty": 0.0})] + [(-0.2, {"goal": 1.0, "penalty": 1.2})] * 3)
    callback = GoalStopCallback(GoalStop(score=lambda m, t: next(scores), patience=3), tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    for step, loss in zip(range(1, 5), [1.0, 0.5, 0.25, 0.12], strict=True):
        callback._score(Weights(), step, control, loss)
    assert control.should_training_stop and callback.trace.best_step == 1


def test_final_weights_that_tie_the_best_score_are_the_ones_kept_and_reported(tmp_path) -> None:
    best_dir, weights = tmp_path / "best", tmp_path / "adapter"
    best_dir.mkdir()
    (best_dir / "w").write_text("best")
    weights.mkdir()
    (weights / "w").write_text("final")
    curve = [{"step": 5, "metric": 1.0}, {"step": 10, "metric": 1.0}]
    assert keep_best(GoalTrace(curve=curve, best=1.0, best_step=5), best_dir, weights) == curve[-1]
    assert (weights / "w").read_text() == "final"  # training went on while the loss fell: its weights stay
    lower = [{"step": 5, "metric": 1.0}, {"step": 10, "metric": 0.9}]
    assert keep_best(GoalTrace(curve=lower, best=1.0, best_step=5), best_dir, weights) == lower[0]
    assert (weights / "w").read_text() == "best"


def test_the_guard_is_asked_only_of_weights_about_to_be_kept_and_fails_them_by_a_whole_point() -> None:
    scores = iter([0.5, 1.0, 1.0, 1.0, 1.0])
    failing = {4, 6}  # the guard's verdicts, by the step it was asked at
    asked: list[int] = []

    def guard(model, tokenizer) -> dict:
        asked.append(step)
        return {"suite_lost": 5, "suite_regressed": step in failing}

    callback = GoalStopCallback(GoalStop(score=lambda m, t: next(scores), patience=3, guard=guard,
                                         refresh_on_tie=True), tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    for step, loss in zip(range(1, 6), [1.0, 0.5, 0.3, 0.2, 0.295], strict=True):
        callback._score(Weights(), step, control, loss)
    # Steps 1 and 2 are new bests; step 3 ties with a lower loss (a refresh); step 4 ties lower again but its
    # general answers regressed; step 5 ties with a loss no lower than the kept step 3's: not a candidate.
    assert asked == [1, 2, 3, 4]
    assert (callback.trace.best, callback.trace.best_step) == (1.0, 3)
    assert not control.should_training_stop  # the refresh was progress: patience (3) counts from step 3
    curve = {entry["step"]: entry for entry in callback.trace.curve}
    assert curve[4]["metric"] == 0.0 and curve[4]["penalty"] == 1.0 and curve[4]["suite_regressed"]
    assert "suite_regressed" not in curve[5]
    # Final weights that tie the best are kept in its place, so the end of training asks the guard of them.
    step = 6
    callback.on_train_end(None, SimpleNamespace(global_step=5, log_history=[]), control, model=Weights())
    assert asked[-1] == 6 and callback.trace.curve[-1]["metric"] == 0.0  # so keep_best restores step 3's


def test_no_plateau_before_any_weights_pass_the_guard() -> None:
    # The goal is learned at once, but the regression suite fails the first four checkpoints: nothing has been
    # kept, so there is nothing to wait on; the fifth passes and patience starts from it.
    def guard(model, tokenizer) -> dict:
        return {"suite_regressed": step < 5}

    callback = GoalStopCallback(GoalStop(score=lambda m, t: (0.9, {"goal": 0.9}), patience=3, guard=guard),
                                tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    for step in range(1, 5):
        callback._score(Weights(), step, control, None)
        assert not control.should_training_stop, step
    assert callback.trace.best is None
    for step in range(5, 9):
        callback._score(Weights(), step, control, None)
    assert (callback.trace.best, callback.trace.best_step) == (0.9, 5)
    assert control.should_training_stop and callback.trace.stop_reason.startswith("goal metric flat")


def test_without_refresh_a_tie_is_never_checked_and_the_best_stays() -> None:
    asked: list[int] = []

    def guard(model, tokenizer) -> dict:
        asked.append(1)
        return {"suite_regressed": False}

    callback = GoalStopCallback(GoalStop(score=lambda m, t: 1.0, patience=5, guard=guard), tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    for step, loss in zip(range(1, 4), [1.0, 0.5, 0.25], strict=True):
        callback._score(Weights(), step, control, loss)
    assert len(asked) == 1 and callback.trace.best_step == 1
