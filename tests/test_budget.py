"""`keras_lpc.annealing.budget`: the default schedule and the gamma budget, by hand."""

from __future__ import annotations

import pytest

from keras_lpc import schedules
from keras_lpc.annealing import default_schedule, gamma_budget


def test_gamma_budget_formula_by_hand():
    assert gamma_budget(4500, 1e-3) == pytest.approx(1e3)
    assert gamma_budget(675, 1e-3) == pytest.approx(22.5)
    assert gamma_budget(675, 1e-3, multiplier=10.0) == pytest.approx(2250.0)
    assert gamma_budget(0, 1e-3) == 0.0


def test_default_schedule_is_a_quadratic_ramp_over_1000_counts():
    s = default_schedule(400.0)
    assert s == schedules.Polynomial(0.0, 400.0, steps=1000, power=2.0)
    assert s(500) == 100.0 and s.span == 1000.0
    assert default_schedule(0.005) == schedules.Constant(0.005)


def test_the_public_names_are_the_same_objects():
    import keras_lpc

    assert schedules.default_schedule is default_schedule
    assert keras_lpc.callbacks.gamma_budget is gamma_budget


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: gamma_budget(-1, 1e-3), r"`steps` must be a number >= 0"),
        (lambda: gamma_budget(10, -1e-3), r"`learning_rate` must be a number >= 0"),
        (lambda: gamma_budget(10, 1e-3, multiplier=0.0), r"`multiplier` must be a positive number"),
        (lambda: default_schedule(-1.0), r"`maximum` must be a number >= 0"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
