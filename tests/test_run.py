"""`keras_lpc.annealing.run.AnnealingRun`: the per-epoch counts, by hand, with no model.

Each scripted epoch of ``steps`` steps uses, at step ``k``, the count
``count0 + rate * k`` that the layer computes in the train step; the
expected counts are worked out from the policies' formulas.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from keras_lpc.annealing import (
    AnnealingRun,
    AnnealingState,
    Decision,
    EpochState,
    Hold,
    Policy,
    TrainingPace,
    default_schedule,
)


def simulate(run, accuracies, steps, start=0, saved=None, monitor="accuracy"):
    """Counts of every step and ``gamma_holding`` of every epoch (None: no decision)."""
    how = run.start(start, saved)
    counts, holding = [], []
    for epoch, value in enumerate(accuracies, start=start):
        state = run.begin_epoch(epoch)
        counts += [state.count + state.rate * k for k in range(steps)]
        nxt = run.end_epoch({monitor: value}, steps)
        holding.append(1.0 - nxt.rate if run.decided else None)
    return counts, holding, how


def _default(classes=2):
    policies = [Hold(), TrainingPace()]
    for policy in policies:
        policy.reset(classes)
    return policies


def test_without_policies_the_count_follows_the_clock():
    run = AnnealingRun([], counts_per_epoch=3)
    counts, holding, how = simulate(run, [0.1, 0.9, 0.2], steps=3)
    assert counts == list(range(9)) and holding == [None] * 3 and how == "new"
    assert run.next == EpochState(3, 9.0, -math.inf, 1.0, {})


def test_the_default_policies_pace_the_count_by_the_training_accuracy():
    # rates decided at the end of each epoch (TrainingPace() defaults):
    # 0.5 first epoch -> 0; 0.9 progress 0.8 -> 0; 0.9 plateau -> 1; 0.95 progress 0.5 -> 0;
    # 0.945 within the tolerance (0.01) of the best, error rose -> 1; plateau -> 1
    run = AnnealingRun(_default(), counts_per_epoch=4)
    counts, holding, _ = simulate(run, [0.5, 0.9, 0.9, 0.95, 0.945, 0.945], steps=4)
    expected = [0, 1, 2, 3] + [4] * 4 + [4] * 4 + [4, 5, 6, 7] + [8] * 4 + [8, 9, 10, 11]
    assert counts == expected
    assert holding == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]


def test_an_easy_run_reaches_the_maximum_of_the_stretched_ramp():
    # 10 epochs of 4 steps, the ramp stretched to end at 0.7 * 40 = 28 counts
    scale = default_schedule(100.0).span / (0.7 * 40)
    run = AnnealingRun(_default(), counts_per_epoch=4, scale=scale)
    counts, _, _ = simulate(run, [1.0] * 10, steps=4)
    # one held epoch (the first decision), then full pace: count 28 at epoch 8
    assert counts[-8] == 28.0
    gammas = [default_schedule(100.0)(c * scale) for c in counts]
    assert gammas[-8:] == pytest.approx([100.0] * 8)


def test_the_policies_state_is_saved_and_a_resumed_run_decides_the_same():
    sequence = [0.5, 0.8, 0.85, 0.86, 0.86, 0.84, 0.9, 0.9]
    whole, _, _ = simulate(AnnealingRun(_default(), 4), sequence, steps=4)
    first = AnnealingRun(_default(), 4)
    head, _, _ = simulate(first, sequence[:4], steps=4)
    saved = first.state()
    assert set(saved.next.policy) == {
        "pace_best",
        "pace_error",
        "pace_rate",
        "pace_speed",
        "pace_good",
    }
    assert saved.next.policy["pace_best"] == pytest.approx(0.86)
    assert saved.next.best == pytest.approx(0.86)  # Hold's best, in its own field
    rest, _, how = simulate(
        AnnealingRun(_default(), 4), sequence[4:], steps=4, start=4, saved=saved
    )
    assert how == "resumed" and head + rest == whole


def test_a_loss_of_ground_sends_the_count_back_and_the_ramp_climbs_at_half_speed():
    accuracies = [1.0] * 4 + [0.9, 0.9, 1.0, 1.0, 1.0]
    run = AnnealingRun(_default(), counts_per_epoch=4)
    counts, holding, _ = simulate(run, accuracies, steps=4)
    # epochs 0-3 as in an easy run (the first decision holds); epoch 4 moves the
    # count 12 -> 16 and loses ground: back to 0.7 * 12 (the last good count) = 8.4,
    # held while lost and while catching up (progress 1), then speed 0.5
    expected = [0, 1, 2, 3] + [4] * 4 + [4, 5, 6, 7] + [8, 9, 10, 11] + [12, 13, 14, 15]
    expected += [8.4] * 12 + [8.4, 8.9, 9.4, 9.9]
    assert counts == pytest.approx(expected)
    assert holding[4:] == [1.0, 1.0, 1.0, 0.5, 0.5]
    assert run.next.policy["pace_speed"] == 0.5
    # resumed at epoch 6 from the saved state: the same counts
    first = AnnealingRun(_default(), 4)
    head, _, _ = simulate(first, accuracies[:6], steps=4)
    tail, _, _ = simulate(
        AnnealingRun(_default(), 4), accuracies[6:], 4, start=6, saved=first.state()
    )
    assert head + tail == pytest.approx(expected)


def test_a_hold_freezes_the_count_while_accuracy_is_below_the_fraction_of_its_best():
    run = AnnealingRun([Hold(fraction=0.8, baseline=None)], counts_per_epoch=3)
    counts, _, _ = simulate(run, [0.5, 0.9, 0.6, 0.7, 0.85, 0.95], steps=3)
    # epochs 0,1 advance; epoch 2 ends at 0.6 < 0.72 -> hold during epoch 3; epoch 3
    # ends at 0.7 < 0.72 -> hold during epoch 4; 0.85 recovers -> epoch 5 advances.
    assert counts == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 10, 11]


def test_a_hold_below_chance_when_accuracy_was_never_above_it():
    # 3 classes: chance is 1/3. The fraction of the best never triggers; the baseline does.
    hold = Hold()
    hold.reset(classes=3)
    counts, _, _ = simulate(AnnealingRun([hold], 2), [0.30, 0.31, 0.35, 0.30], steps=2)
    assert counts == [0, 1, 2, 2, 2, 2, 2, 3]
    without = Hold(baseline=None)
    without.reset(classes=3)
    counts, _, _ = simulate(AnnealingRun([without], 2), [0.30, 0.31, 0.35, 0.30], steps=2)
    assert counts == list(range(8))


class _HalfSpeed(Policy):
    """Half speed after an epoch below 0.9 accuracy; counts its calls in its state."""

    def __init__(self):
        self.calls = 0.0

    def decide(self, logs, count):
        self.calls += 1.0
        return Decision(0.5 if logs["accuracy"] < 0.9 else 1.0, count)

    def state_entries(self):
        return {"calls": self.calls}

    def load_entries(self, entries):
        self.calls = entries.get("calls", 0.0)

    def get_config(self):
        return {}


def test_a_users_policy_sets_the_next_rate_and_its_state_is_saved():
    run = AnnealingRun([_HalfSpeed()], counts_per_epoch=4)
    counts, holding, _ = simulate(run, [0.95, 0.5, 0.95], steps=4)
    assert counts == [0, 1, 2, 3, 4, 5, 6, 7, 8, 8.5, 9, 9.5]
    assert holding == [0.0, 0.5, 0.0]
    assert run.next == EpochState(3, 10.0, -np.inf, 1.0, {"calls": 3.0})
    assert run.current.rate == 0.5 and run.state().counts_per_epoch == 4


def test_a_policy_returning_a_rate_outside_0_1_is_an_error():
    class Bad(_HalfSpeed):
        def decide(self, logs, count):
            return Decision(2.0, count)

    run = AnnealingRun([Bad()], 2)
    run.start(0, None)
    run.begin_epoch(0)
    with pytest.raises(ValueError, match=r"Bad.decide must return a rate in \[0, 1\] or None"):
        run.end_epoch({"accuracy": 1.0}, 2)


def test_a_new_run_on_an_annealed_layer_continues_its_count_on_the_new_scale():
    saved = AnnealingState(EpochState(1, 4.0, -math.inf), EpochState(2, 8.0, -math.inf), 4, 2.0)
    run = AnnealingRun([], counts_per_epoch=8, scale=1.0)
    assert run.start(0, saved) == "continued"
    assert run.count == 16.0  # the same schedule count: 8 x 2.0 / 1.0


def test_a_resumed_run_keeps_the_effective_count_on_its_own_scale():
    # resumed at epoch 2 of a run told to be longer: the count is the run's own (the
    # trajectory of an uninterrupted run of that length), not the shorter run's gamma
    saved = AnnealingState(EpochState(1, 4.0, -math.inf), EpochState(2, 8.0, -math.inf), 4, 2.0)
    run = AnnealingRun([], counts_per_epoch=4, scale=0.5)
    assert run.start(2, saved) == "resumed"
    assert run.count == 8.0


def test_resuming_without_a_matching_state_warns_and_uses_epoch_times_steps():
    saved = AnnealingState(EpochState(1, 4.0, -math.inf), None, 4)
    run = AnnealingRun([], counts_per_epoch=4)
    with pytest.warns(UserWarning, match="does not match epoch 3 with 4 counts per epoch"):
        run.start(3, saved)
    assert run.count == 12.0


# ------------------------------------------------------------ the plan of a run (plan.py)
def test_plan_of_the_default_recipe_by_hand():
    from keras_lpc.annealing.plan import plan

    # 100 epochs of 10 steps at lr 1e-3: budget 1e3 * (1e-3 * 1000 / 4.5) ** 2 = 49.4
    p = plan(
        None,
        auto_maximum=True,
        ramp_fraction=0.7,
        unit="step",
        steps=10,
        epochs=100,
        learning_rate=1e-3,
    )
    assert p.schedule.stop == pytest.approx(1e3 * (1e-3 * 1000 / 4.5) ** 2)
    assert p.scale == pytest.approx(1000 / 700) and p.counts_per_epoch == 10
    assert not p.unknown_length
    # a multiplier x10 on the head: budget x100, capped at 1e3; unknown lr: 1e3
    assert plan(None, auto_maximum=True, ramp_fraction=0.7, unit="step", steps=10, epochs=100,
                learning_rate=1e-3, multiplier=10.0).schedule.stop == 1e3  # fmt: skip
    unknown = plan(None, auto_maximum=True, ramp_fraction=0.7, unit="step", steps=None,
                   epochs=100, learning_rate=1e-3)  # fmt: skip
    assert unknown.unknown_length and unknown.scale == 1.0 and unknown.schedule.stop == 1e3


def test_plan_stretches_to_the_last_step_at_the_latest():
    from keras_lpc.annealing.plan import plan
    from keras_lpc.schedules import Linear

    kwargs = dict(auto_maximum=False, unit="step", epochs=4, learning_rate=None)
    # 16 steps, 0.95: 15.2 is past the last step (15), so the ramp ends at 15
    assert plan(Linear(0, 1, 30), ramp_fraction=0.95, steps=4, **kwargs).scale == 2.0
    assert plan(Linear(0, 1, 30), ramp_fraction=0.5, steps=4, **kwargs).scale == 30 / 8
    assert plan(Linear(0, 1, 30), ramp_fraction=None, steps=4, **kwargs).scale == 1.0
    per_epoch = plan(Linear(0, 1, 30), ramp_fraction=0.5, steps=4, **{**kwargs, "unit": "epoch"})
    assert per_epoch.counts_per_epoch == 1 and per_epoch.scale == 30 / 2


def test_a_state_saved_before_the_epoch_ended_resumes_when_no_policy_decides():
    # e.g. KerasTuner's checkpoint of a Hyperband trial, listed before GammaAnnealing
    saved = AnnealingState(EpochState(0, 0.0, -math.inf, 1.0), None, 4)
    run = AnnealingRun([], counts_per_epoch=4)
    assert run.start(1, saved) == "resumed" and run.count == 4.0
    with pytest.warns(UserWarning, match="does not match epoch 1"):
        AnnealingRun([Hold()], counts_per_epoch=4).start(1, saved)  # a policy would decide
