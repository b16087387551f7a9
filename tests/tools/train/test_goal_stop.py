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


def test_training_stops_early_enough_to_score_its_last_weights_by_the_deadline(tiny_model_dir, repetitive_data,
                                                                              tmp_path, monkeypatch):
    from tools.train import goal_stop

    clock = [1000.0]  # the run's clock: a goal score takes 10 s of it, a guard check 20 s, a step none
    monkeypatch.setattr(goal_stop, "time", SimpleNamespace(time=lambda: clock[0], perf_counter=lambda: clock[0]))
    ended: list[float] = []

    def score(model, tokenizer) -> float:
        clock[0] += 10
        ended.append(clock[0])
        return 0.5

    def guard(model, tokenizer) -> dict:
        clock[0] += 20
        ended.append(clock[0])
        return {"suite_regressed": False}

    result = train(fast_config(max_steps=200), tiny_model_dir, *repetitive_data, tmp_path / "out", progress=False,
                   goal=GoalStop(score=score, every=1, patience=100, deadline=1065.0, guard=guard))
    # Step 1: scored and checked by 1030. Step 2 (a tie, not checked yet) by 1040. Another score may need a check
    # too (10 + 20 s) and would end at 1070, past the deadline: training stops at step 2. Its weights tie the
    # best and are the ones kept, so they are checked at the end, still by the deadline.
    assert result.stop_reason == "deadline" and result.steps == 2
    assert ended == [1010.0, 1030.0, 1040.0, 1060.0]


def test_weights_that_score_nothing_are_not_checked_by_the_guard() -> None:
    scores = iter([0.0, 0.0, 0.5])
    asked: list[int] = []

    def guard(model, tokenizer) -> dict:
        asked.append(step)
        return {"suite_regressed": False}

    callback = GoalStopCallback(GoalStop(score=lambda m, t: next(scores), guard=guard, refresh_on_tie=True),
                                tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    for step, loss in zip(range(1, 4), [1.0, 0.5, 0.3], strict=True):
        callback._score(Weights(), step, control, loss)
    assert asked == [3] and (callback.trace.best, callback.trace.best_step) == (0.5, 3)
    step = 4  # final weights at 0.0 tie nothing worth keeping: no check at the end either
    callback.on_train_end(None, SimpleNamespace(global_step=3, log_history=[]), control, model=Weights())
    assert asked == [3]


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


def test_the_guard_checks_at_once_until_weights_pass_then_when_training_stops_newest_first() -> None:
    scores = iter([0.5, 0.8, 0.8, 0.8, 0.8])
    verdicts = iter([False, True, True, False])  # suite_regressed, call by call
    asked: list[int] = []

    def guard(model, tokenizer) -> dict:
        asked.append(step)
        return {"suite_lost": 5, "suite_regressed": next(verdicts)}

    callback = GoalStopCallback(GoalStop(score=lambda m, t: next(scores), patience=3, guard=guard,
                                         refresh_on_tie=True), tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    for step, loss in zip(range(1, 6), [1.0, 0.5, 0.3, 0.2, 0.295], strict=True):
        callback._score(Weights(), step, control, loss)
    # Step 1 is checked at once and passes. Steps 2-4 are kept too (a new best, then ties with a lower loss) but
    # not checked yet; step 5 ties with a loss no lower than step 4's: not kept. Patience counts from step 4.
    assert asked == [1]
    assert (callback.trace.best, callback.trace.best_step) == (0.8, 4)
    assert not control.should_training_stop
    # Training ends: its final weights tie the best and would be kept, so they are checked first, then the
    # newest kept weights until some pass: 5 and 4 regressed and lose a whole point; 3 passes and is the best.
    step = 6
    callback.on_train_end(None, SimpleNamespace(global_step=5, log_history=[]), control, model=Weights())
    assert len(asked) == 4
    curve = {entry["step"]: entry for entry in callback.trace.curve}
    assert curve[5]["metric"] == curve[4]["metric"] == -0.2 and curve[4]["penalty"] == 1.0
    assert curve[3]["suite_regressed"] is False and "suite_regressed" not in curve[2]
    assert (callback.trace.best, callback.trace.best_step) == (0.8, 3)  # so keep_best restores step 3's
    # each check at the stop is timed in its entry, beside the score's own time
    assert all(curve[s]["check_seconds"] >= 0 for s in (3, 4, 5)) and "check_seconds" not in curve[2]


def test_weights_kept_unchecked_are_checked_as_saved_and_the_first_that_passes_is_the_one_kept(
        tiny_model_dir, repetitive_data, tmp_path):
    def lora_sum(model) -> float:
        return round(float(sum(p.detach().double().sum() for n, p in model.named_parameters() if "lora_" in n)), 6)

    scores = iter([0.5, 0.8, 0.9])
    seen: list[float] = []

    def guard(model, tokenizer) -> dict:
        seen.append(lora_sum(model))
        return {"suite_regressed": len(seen) == 2}  # the final (step 12) weights regressed

    out = tmp_path / "out"
    result = train(fast_config(max_steps=12), tiny_model_dir, *repetitive_data, out, progress=False,
                   goal=GoalStop(score=lambda m, t: next(scores), every=4, patience=5, guard=guard,
                                 best_dir=out / "best"))
    # Step 4 was checked at once; steps 8 and 12 were kept unchecked, then checked at the end newest first:
    # 12 in place (regressed), then 8 as it was saved, swapped in for the check.
    assert len(seen) == 3 and len({*seen}) == 3
    assert (result.best_goal_step, result.best_goal_metric) == (8, 0.8)
    kept = _weights(out / "adapter")
    assert round(float(sum(t.double().sum() for t in kept.values())), 6) == seen[2]
    assert (out / "adapter" / "tokenizer_config.json").exists()  # a whole model folder, as the trainer saves it
    assert not list(out.glob("best-unchecked-*"))  # the unchecked copies are gone


def test_a_stop_whose_kept_weights_regressed_trains_on() -> None:
    verdicts = iter([False, True])
    callback = GoalStopCallback(GoalStop(score=lambda m, t: (1.0, {"goal": 1.0}), patience=2,
                                         guard=lambda m, t: {"suite_regressed": next(verdicts)},
                                         refresh_on_tie=True), tokenizer=None)
    control = SimpleNamespace(should_training_stop=False)
    # Perfect from step 1 (checked, passes); step 2 is kept unchecked (a tie with a falling loss); step 3's
    # loss stopped falling: the goal is met, so the kept step-2 weights are checked, and they regressed.
    for step, loss in zip(range(1, 4), [1.0, 0.5, 0.5], strict=True):
        callback._score(Weights(), step, control, loss)
    assert not control.should_training_stop and callback.trace.best_step == 1
    callback._score(Weights(), 4, control, 0.5)  # met again; nothing unchecked is left: it stops
    assert control.should_training_stop and callback.trace.stop_reason == "goal met on the validation sample"


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
