"""`TrainingPace`: the per-epoch rule that paces the gamma ramp (issue 19).

Scripted accuracy sequences with the rates worked out by hand from the
formula in the docstring: it holds while the model learns fast, holds when it
loses ground, resumes once it has caught up, runs at full pace on a plateau,
and resumes exactly from its state.
"""

from __future__ import annotations

import math

import pytest

from keras_lpc.callbacks.pacing import TrainingPace


def _rates(pace, accuracies):
    return [pace.rate(a) for a in accuracies]


def test_first_epoch_holds_and_a_perfect_plateau_runs_at_full_pace():
    # easy training: 100 % from the first epoch; error 0 -> progress 0 -> rate 1
    assert _rates(TrainingPace(), [1.0, 1.0, 1.0]) == [0.0, 1.0, 1.0]


def test_holds_while_learning_fast_then_proportional_then_full():
    pace = TrainingPace(fast=0.2, floor=0.01)
    # errors 0.5, 0.1 (progress 0.8), 0.09 (0.1), 0.09 (0), 0.0855 (0.05)
    rates = _rates(pace, [0.5, 0.9, 0.91, 0.91, 0.9145])
    assert rates == pytest.approx([0.0, 0.0, 0.5, 1.0, 0.75])


def test_floor_limits_progress_near_perfect_accuracy():
    pace = TrainingPace(fast=0.2, floor=0.05)
    # 99.6 % -> 99.8 %: progress 0.002 / 0.05 = 0.04 (not 0.5), rate 1 - 0.04 / 0.2
    assert _rates(pace, [0.996, 0.998]) == pytest.approx([0.0, 0.8])


def test_lost_ground_holds_until_caught_up():
    pace = TrainingPace(fast=0.2, floor=0.01, lost_min=0.01, lost_rel=0.2)
    # best 0.95: tolerance max(0.01, 0.2 * 0.05) = 0.01
    rates = _rates(pace, [0.95, 0.95, 0.93, 0.935, 0.941, 0.941])
    # 0.93 < 0.94: hold; 0.935 < 0.94: hold; 0.941 caught up but progress
    # (0.065 - 0.059) / 0.065 = 0.0923 -> 1 - 0.0923 / 0.2 = 0.538; then plateau
    assert rates[:4] == [0.0, 1.0, 0.0, 0.0]
    assert rates[4] == pytest.approx(1 - (0.006 / 0.065) / 0.2, rel=1e-9)
    assert rates[5] == 1.0


def test_lost_ground_tolerance_scales_with_the_remaining_error():
    # best 0.6: tolerance max(0.01, 0.2 * 0.4) = 0.08; 0.51 is a loss, 0.53 is not
    pace = TrainingPace(lost_rel=0.2)
    assert _rates(pace, [0.6, 0.6, 0.51]) == [0.0, 1.0, 0.0]
    pace = TrainingPace(lost_rel=0.2)
    assert _rates(pace, [0.6, 0.6, 0.53])[2] == 1.0  # error rose: no progress, full pace


def test_non_finite_accuracy_keeps_the_rate_and_the_state():
    pace = TrainingPace()
    _rates(pace, [0.9, 0.9])
    state = pace.get_state()
    assert pace.rate(math.nan) == 1.0
    assert pace.get_state() == state


def test_state_resumes_exactly():
    sequence = [0.3, 0.6, 0.8, 0.85, 0.86, 0.84, 0.87, 0.87, 0.9]
    whole = _rates(TrainingPace(fast=0.1), sequence)
    first = TrainingPace(fast=0.1)
    head = _rates(first, sequence[:5])
    resumed = TrainingPace(fast=0.1)
    resumed.set_state(first.get_state())
    assert head + _rates(resumed, sequence[5:]) == whole
    assert resumed.get_state() == pytest.approx((0.9, 0.1, whole[-1]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fast": 0.0}, "fast"),
        ({"floor": 0.0}, "floor"),
        ({"floor": 1.5}, "floor"),
        ({"lost_min": -0.1}, "lost_min"),
        ({"lost_min": 2.0}, "lost_min"),
        ({"lost_rel": -1.0}, "lost_rel"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainingPace(**kwargs)


def test_bad_argument_type():
    with pytest.raises(TypeError, match="fast"):
        TrainingPace(fast="quick")
