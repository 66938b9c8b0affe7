"""`keras_lpc.annealing.policies`: `Hold` and the `Policy` interface, decisions by hand."""

from __future__ import annotations

import math

import pytest

from keras_lpc.annealing import Decision, Hold
from keras_lpc.annealing.policies import monitor_value


def _rates(hold, values, monitor="accuracy"):
    return [hold.decide({monitor: v}, 0.0).rate for v in values]


def test_hold_below_the_fraction_of_the_best():
    # best 0.9 after epoch 1: 0.6 < 0.72 holds, 0.7 < 0.72 holds, 0.85 does not
    hold = Hold(fraction=0.8, baseline=None)
    assert _rates(hold, [0.5, 0.9, 0.6, 0.7, 0.85]) == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert hold.best == 0.9
    assert hold.state_entries() == {"hold_best": 0.9}


def test_hold_in_min_mode_on_a_loss_with_min_delta():
    hold = Hold("loss", fraction=0.8, min_delta=0.05)
    assert hold.direction == "min"
    # best 1.0, then 0.5; 0.47 is not better by more than 0.05, so best stays 0.5 and
    # 0.65 > 0.5 / 0.8 = 0.625 holds; 0.6 recovers.
    assert _rates(hold, [1.0, 0.5, 0.47, 0.65, 0.6], "loss") == [1.0, 1.0, 1.0, 0.0, 1.0]
    assert hold.best == 0.5


def test_auto_baseline_is_chance_for_an_accuracy():
    hold = Hold()
    hold.reset(classes=4)
    assert _rates(hold, [0.2, 0.3]) == [0.0, 1.0]  # 0.2 < 1/4
    binary = Hold()
    binary.reset(classes=1)  # a single sigmoid score: chance is 0.5
    assert _rates(binary, [0.45]) == [0.0]
    unknown = Hold()
    unknown.reset(classes=None)  # unknown number of classes: no baseline
    assert _rates(unknown, [0.01]) == [1.0]
    loss = Hold("loss")
    loss.reset(classes=4)  # a loss has no chance level
    assert _rates(loss, [3.0], "loss") == [1.0]


def test_a_number_as_baseline_holds_while_worse():
    hold = Hold(baseline=0.5)
    assert _rates(hold, [0.4, 0.6]) == [0.0, 1.0]


def test_missing_monitor_warns_once_and_decides_nothing():
    hold = Hold("f1")
    with pytest.warns(UserWarning, match=r"`monitor`='f1' is not in the training logs"):
        assert hold.decide({"accuracy": 0.9}, 3.0) == Decision(None, 3.0)
    assert hold.decide({"accuracy": 0.9}, 3.0) == Decision(None, 3.0)  # silent now
    assert hold.decide({"f1": math.nan}, 3.0) == Decision(None, 3.0)


def test_state_entries_round_trip_and_reset():
    hold = Hold()
    hold.load_entries({"hold_best": 0.7})
    assert hold.best == 0.7
    hold.reset()
    assert hold.best == -math.inf
    assert Hold("val_loss").best == math.inf


def test_monitor_value():
    assert monitor_value({"a": 0.5}, "a") == 0.5
    assert monitor_value({"a": float("inf")}, "a") is None
    assert monitor_value({}, "a") is None


def test_config_round_trip():
    hold = Hold("val_accuracy", 0.9, "max", 0.01, None)
    again = Hold.from_config(hold.get_config())
    assert again.get_config() == hold.get_config()
    assert repr(again) == (
        "Hold(monitor='val_accuracy', fraction=0.9, mode='max', min_delta=0.01, baseline=None)"
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"monitor": 3}, TypeError, r"`monitor` must be a metric name. Received: monitor=3"),
        ({"fraction": 1.5}, ValueError, r"`fraction` must be in \[0, 1\]. Received: fraction=1.5"),
        ({"fraction": -0.1}, ValueError, r"`fraction` must be a number >= 0"),
        ({"mode": "up"}, ValueError, r"`mode` must be one of 'auto', 'max', 'min'"),
        ({"min_delta": -1.0}, ValueError, r"`min_delta` must be a number >= 0"),
        ({"baseline": "chance"}, ValueError, r"`baseline` must be 'auto', None or a number"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Hold(**kwargs)
