"""`keras_lpc.annealing.pace`: `TrainingPace`, the policy that paces the gamma ramp, and `PaceState`.

Scripted accuracy sequences with the rates worked out by hand from the
formula in the docstring: it holds while the model learns fast, holds when it
loses ground, resumes once it has caught up, runs at full pace on a plateau,
backs off (count and speed) when it loses ground while the ramp moves, and
resumes exactly from its state.
"""

from __future__ import annotations

import math

import pytest

from keras_lpc.annealing import Decision, PaceState, TrainingPace


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
    state = resumed.get_state()
    assert (state.best, state.previous_error, state.last_rate, state.speed) == pytest.approx(
        (0.9, 0.1, whole[-1], 1.0)
    )


def test_loss_of_ground_while_the_ramp_moves_backs_off_count_and_speed():
    pace = TrainingPace(retreat=0.7, backoff=0.5)
    # (accuracy, count at the epoch's end): the ramp moves 0 -> 10 -> 20, then the
    # accuracy falls 1.0 -> 0.9 (tolerance 0.01) while it moves to 30
    decisions = []
    for accuracy, count in ((1.0, 0.0), (1.0, 10.0), (1.0, 20.0), (0.9, 30.0)):
        decisions.append((pace.rate(accuracy, count=count), pace.next_count(count)))
    assert decisions == [(0.0, 0.0), (1.0, 10.0), (1.0, 20.0), (0.0, 0.7 * 20.0)]
    assert pace.speed == 0.5 and pace.good_count == 20.0
    # still lost at the retreated count (below the good one): no second back-off
    assert (pace.rate(0.95, count=14.0), pace.next_count(14.0)) == (0.0, 14.0)
    assert pace.speed == 0.5
    # caught up: error 0.05 -> 0 is progress 1 (hold); then a plateau at half speed
    assert pace.rate(1.0, count=14.0) == 0.0 and pace.good_count == 14.0
    assert pace.rate(1.0, count=14.0) == 0.5
    assert pace.next_count(14.0) == 14.0


def test_loss_of_ground_during_a_hold_does_not_back_off():
    pace = TrainingPace()
    for accuracy in (1.0, 1.0):
        pace.rate(accuracy, count=5.0)
    assert pace.rate(0.9, count=5.0) == 0.0  # lost, but the ramp did not move
    assert pace.next_count(5.0) == 5.0 and pace.speed == 1.0
    # without counts (the plain rate() of earlier versions) there is no back-off
    plain = TrainingPace()
    assert _rates(plain, [1.0, 1.0, 0.9]) == [0.0, 1.0, 0.0]
    assert plain.next_count(7.0) == 7.0 and plain.speed == 1.0


def test_a_state_of_an_earlier_version_resumes_at_full_speed():
    pace = TrainingPace()
    with pytest.warns(DeprecationWarning, match="a tuple is deprecated; pass a PaceState"):
        pace.set_state((0.9, 0.1, 1.0))
    state = pace.get_state()
    assert (state.best, state.previous_error, state.last_rate, state.speed) == (0.9, 0.1, 1.0, 1.0)
    assert math.isnan(state.good_count)
    with pytest.raises(ValueError, match=r"`state` must be a PaceState.*Received: state=\(1.0,\)"):
        pace.set_state((1.0,))
    # saved entries of that version (three names) load the same way
    old = PaceState.from_entries({"pace_best": 0.9, "pace_error": 0.1, "pace_rate": 1.0})
    assert old.speed == 1.0 and math.isnan(old.good_count)


def test_pace_state_entries_round_trip_with_the_saved_names():
    state = PaceState(0.9, 0.1, 0.5, 0.25, 12.0)
    assert state.to_entries() == {
        "pace_best": 0.9,
        "pace_error": 0.1,
        "pace_rate": 0.5,
        "pace_speed": 0.25,
        "pace_good": 12.0,
    }
    pace = TrainingPace()
    pace.load_entries(state.to_entries())
    assert pace.get_state() == state
    assert pace.state_entries() == state.to_entries()
    pace.load_entries({})  # no saved state: a fresh start
    assert pace.get_state() == PaceState()


def test_decide_reads_the_monitor_and_backs_off_the_count():
    pace = TrainingPace()
    assert pace.decide({"accuracy": 1.0}, 0.0) == Decision(0.0, 0.0)
    assert pace.decide({"accuracy": 1.0}, 10.0) == Decision(1.0, 10.0)
    assert pace.decide({"accuracy": 0.9}, 20.0) == Decision(0.0, 7.0)  # 0.7 x the good 10
    # no accuracy in the logs (or not finite): no decision, the count unchanged
    assert pace.decide({"loss": 0.3}, 5.0) == Decision(None, 5.0)
    assert pace.decide({"accuracy": float("nan")}, 5.0) == Decision(None, 5.0)
    other = TrainingPace(monitor="acc2")
    assert other.decide({"acc2": 1.0}, 0.0).rate == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fast": 0.0}, "fast"),
        ({"floor": 0.0}, "floor"),
        ({"floor": 1.5}, "floor"),
        ({"lost_min": -0.1}, "lost_min"),
        ({"lost_min": 2.0}, "lost_min"),
        ({"lost_rel": -1.0}, "lost_rel"),
        ({"retreat": 1.5}, r"`retreat` must be in \[0, 1\]. Received: retreat=1.5"),
        ({"retreat": -0.1}, "retreat"),
        ({"backoff": 2.0}, r"`backoff` must be in \[0, 1\]. Received: backoff=2.0"),
        ({"backoff": -1.0}, "backoff"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainingPace(**kwargs)


def test_bad_argument_type():
    with pytest.raises(TypeError, match="fast"):
        TrainingPace(fast="quick")
    with pytest.raises(TypeError, match=r"`monitor` must be a metric name. Received: monitor=3"):
        TrainingPace(monitor=3)


def test_config_round_trip():
    pace = TrainingPace(fast=0.1, retreat=0.5, monitor="acc")
    again = TrainingPace.from_config(pace.get_config())
    assert again.get_config() == pace.get_config()
    assert repr(again).startswith("TrainingPace(fast=0.1")
