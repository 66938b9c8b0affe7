"""`TrainingPace`: the per-epoch rule that paces the gamma ramp (issue 19).

Scripted accuracy sequences with the rates worked out by hand from the
formula in the docstring: it holds while the model learns fast, holds when it
loses ground, resumes once it has caught up, runs at full pace on a plateau,
backs off (count and speed) when it loses ground while the ramp moves, and
resumes exactly from its state.
"""

from __future__ import annotations

import math

import keras
import pytest

import keras_lpc
from keras_lpc import schedules as S
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
    assert resumed.get_state()[:4] == pytest.approx((0.9, 0.1, whole[-1], 1.0))


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
    pace.set_state((0.9, 0.1, 1.0))
    state = pace.get_state()
    assert state[:4] == (0.9, 0.1, 1.0, 1.0) and math.isnan(state[4])
    with pytest.raises(ValueError, match=r"`state` must be the 5 floats.*Received: state=\(1.0,\)"):
        pace.set_state((1.0,))


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


# ------------------------------------------------------------ inside GammaAnnealing
def _lpc_model():
    return keras.Sequential(
        [keras.Input((4,)), keras_lpc.LatentPointCollapse(2, name="lpc"), keras.layers.Dense(2)]
    )


def _drive(cb, accuracies, steps=4, model=None, start=0):
    """Scripted epochs through the callback's hooks: the count at every step, and the logs."""
    cb.set_model(model if model is not None else _lpc_model())
    cb.set_params({"epochs": start + len(accuracies), "steps": steps, "verbose": 0})
    cb.on_train_begin()
    counts, logged = [], []
    for epoch, acc in enumerate(accuracies, start=start):
        cb.on_epoch_begin(epoch)
        for batch in range(steps):
            counts.append(cb.count_at(batch))
            cb.on_train_batch_end(batch, {"accuracy": acc} if batch + 1 == steps else {})
        logs = {"accuracy": acc}
        cb.on_epoch_end(epoch, logs)
        logged.append(logs)
    return counts, logged


def test_the_default_paces_the_count_by_the_training_accuracy():
    cb = keras_lpc.GammaAnnealing(max_gamma=100.0)
    assert isinstance(cb.pacer, TrainingPace) and cb.ramp_fraction == 0.7
    # rates decided at the end of each epoch (TrainingPace() defaults):
    # 0.5 first epoch -> 0; 0.9 progress 0.8 -> 0; 0.9 plateau -> 1; 0.95 progress 0.5 -> 0;
    # 0.945 within the tolerance (0.01) of the best, error rose -> 1; plateau -> 1
    counts, logged = _drive(cb, [0.5, 0.9, 0.9, 0.95, 0.945, 0.945])
    # epoch 0 runs at the initial rate 1, then 0, 0, 1, 0, 1
    expected = [0, 1, 2, 3] + [4] * 4 + [4] * 4 + [4, 5, 6, 7] + [8] * 4 + [8, 9, 10, 11]
    assert counts == expected
    assert [log["gamma_holding"] for log in logged] == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    # gamma follows the paced quadratic ramp: 100 * (count / (0.7 * 24)) ** 2 at the last step
    assert logged[-1]["gamma"] == pytest.approx(100.0 * (11 / (0.7 * 24)) ** 2)


def test_it_reaches_the_maximum_when_training_is_easy():
    cb = keras_lpc.GammaAnnealing(max_gamma=100.0)
    _, logged = _drive(cb, [1.0] * 10, steps=4)
    # one held epoch (the first decision), then full pace: the ramp ends at 0.7 * 40 = 28
    # counts, reached at epoch 8 (count 28 = 4 + 6 * 4); gamma stays at the maximum
    assert [log["gamma"] for log in logged][-2:] == [100.0, 100.0]


def test_explicit_schedules_and_pacing_none_follow_the_clock():
    assert keras_lpc.GammaAnnealing(S.Linear(0.0, 1.0, 10)).pacer is None
    clock = keras_lpc.GammaAnnealing(pacing=None)
    assert clock.pacer is None and clock.ramp_fraction == 0.95
    assert keras_lpc.GammaAnnealing(hold_monitor=None).pacer is None
    counts, _ = _drive(clock, [0.5, 0.9, 0.9], steps=2)
    assert counts == [0, 1, 2, 3, 4, 5]
    paced = keras_lpc.GammaAnnealing(S.Linear(0.0, 1.0, 10), pacing=TrainingPace())
    counts, _ = _drive(paced, [0.5, 0.9, 0.9], steps=2)
    assert counts == [0, 1, 2, 2, 2, 2]


def test_the_pacing_state_is_saved_and_a_resumed_run_decides_the_same():
    sequence = [0.5, 0.8, 0.85, 0.86, 0.86, 0.84, 0.9, 0.9]
    whole, _ = _drive(keras_lpc.GammaAnnealing(max_gamma=10.0), sequence)
    model = _lpc_model()
    first, _ = _drive(keras_lpc.GammaAnnealing(max_gamma=10.0), sequence[:4], model=model)
    state = model.get_layer("lpc").annealing_state
    assert set(state.next.policy) == {
        "pace_best",
        "pace_error",
        "pace_rate",
        "pace_speed",
        "pace_good",
    }
    assert state.next.policy["pace_best"] == pytest.approx(0.86)
    # a new callback resuming at epoch 4 (initial_epoch=4) from the layer's state
    cb = keras_lpc.GammaAnnealing(max_gamma=10.0)
    rest, _ = _drive(cb, sequence[4:], model=model, start=4)
    assert first + rest == whole


def test_a_loss_of_ground_sends_the_count_back_and_the_ramp_climbs_at_half_speed():
    cb = keras_lpc.GammaAnnealing(max_gamma=100.0)
    accuracies = [1.0] * 4 + [0.9, 0.9, 1.0, 1.0, 1.0]
    counts, logged = _drive(cb, accuracies)
    # epochs 0-3 as in an easy run (the first decision holds); epoch 4 moves the
    # count 12 -> 16 and loses ground: back to 0.7 * 12 (the last good count) = 8.4,
    # held while lost and while catching up (progress 1), then speed 0.5
    expected = [0, 1, 2, 3] + [4] * 4 + [4, 5, 6, 7] + [8, 9, 10, 11] + [12, 13, 14, 15]
    expected += [8.4] * 12 + [8.4, 8.9, 9.4, 9.9]
    assert counts == pytest.approx(expected)
    # the logged gamma is the epoch's last step's; the back-off epoch logs the value it reached
    assert logged[4]["gamma"] == pytest.approx(100.0 * (15 / (0.7 * 36)) ** 2)
    assert logged[5]["gamma"] == pytest.approx(100.0 * (8.4 / (0.7 * 36)) ** 2)
    assert [log["gamma_holding"] for log in logged][4:] == [1.0, 1.0, 1.0, 0.5, 0.5]
    assert cb.policy_state["pace_speed"] == 0.5
    # resumed at epoch 6 from the layer's saved state: the same counts
    model = _lpc_model()
    head, _ = _drive(keras_lpc.GammaAnnealing(max_gamma=100.0), accuracies[:6], model=model)
    tail, _ = _drive(
        keras_lpc.GammaAnnealing(max_gamma=100.0), accuracies[6:], model=model, start=6
    )
    assert head + tail == pytest.approx(expected)


def test_pacing_config_round_trip_and_bad_values():
    cb = keras_lpc.GammaAnnealing(pacing=TrainingPace(fast=0.1))
    config = cb.get_config()
    assert config["pacing"] == TrainingPace(fast=0.1).get_config()
    assert config["ramp_fraction"] == "auto"
    again = keras_lpc.GammaAnnealing(**config)
    assert again.pacer.fast == 0.1 and again.ramp_fraction == 0.7
    assert keras_lpc.GammaAnnealing(**keras_lpc.GammaAnnealing().get_config()).pacer is not None
    with pytest.raises(ValueError, match="`pacing` must be 'auto', None"):
        keras_lpc.GammaAnnealing(pacing="fast")
    with pytest.raises(ValueError, match="`pacing` reads a training accuracy"):
        keras_lpc.GammaAnnealing(pacing=TrainingPace(), hold_monitor="loss")
    with pytest.raises(ValueError, match="`ramp_fraction` must be 'auto' or a number"):
        keras_lpc.GammaAnnealing(ramp_fraction="late")
