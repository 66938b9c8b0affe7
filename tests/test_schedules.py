"""Gamma schedules: values at chosen counts, spans, monotonicity, serialization, errors."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from keras_lpc import schedules as S

ALL = [
    S.Constant(0.3),
    S.Exponential(0.01, 1.05, 1, 1e6),
    S.TwoPhaseExponential(),
    S.Linear(0.0, 10.0, steps=100, delay=20),
    S.Cosine(1.0, 5.0, steps=50),
    S.Geometric(1e-4, 1e3, steps=70, delay=5),
    S.Polynomial(0.5, 100.0, steps=40, delay=3, power=3.0),
    S.Join([S.Constant(0.0), S.Linear(0.0, 1.0, 10)], boundaries=[5]),
]


def test_exponential_closed_form():
    s = S.Exponential(initial=0.5, factor=3.0, every=4, maximum=100.0)
    for count in [0, 3, 4, 7, 8, 13, 16, 100]:
        assert s(count) == pytest.approx(min(100.0, 0.5 * 3.0 ** (count // 4)))
    assert s.span == 20.0  # 0.5 * 3**4 = 40.5 < 100 <= 0.5 * 3**5: capped from k = 5


def test_two_phase_matches_the_authors_iterative_rule():
    s = S.TwoPhaseExponential()
    gamma, expected = 1e-4, []
    for epoch in range(400):
        if epoch > 0 and epoch % 5 == 0:
            gamma = min(1e6, gamma * (2.0 if gamma < 1e3 else 1.25))
        expected.append(gamma)
    got = [s(e) for e in range(400)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert s(119) < 1e3 <= s(120)
    assert s(264) < 1e6 == s(265)
    assert s.span == 265.0


def test_ramps_at_chosen_counts():
    lin = S.Linear(0.0, 10.0, steps=100, delay=20)
    assert [lin(0), lin(20), lin(45), lin(120), lin(500)] == [0.0, 0.0, 2.5, 10.0, 10.0]
    cos = S.Cosine(1.0, 5.0, steps=50)
    assert cos(25) == pytest.approx(3.0)
    assert cos(50) == 5.0
    geo = S.Geometric(1e-4, 1e3, steps=70, delay=5)
    assert geo(5) == pytest.approx(1e-4)
    assert geo(15) == pytest.approx(1e-3)  # one decade per 10 counts
    assert geo(75) == 1e3
    assert geo.span == 75.0
    quad = S.Polynomial(0.0, 1e3, steps=100, delay=10)
    np.testing.assert_allclose(
        [quad(0), quad(10), quad(20), quad(60), quad(110), quad(1e9)],
        [0.0, 0.0, 10.0, 250.0, 1e3, 1e3],
        rtol=1e-12,
    )
    # sqrt(gamma) grows by the same amount every count: the output layer's required pace
    roots = np.sqrt([quad(c) for c in range(10, 111, 10)])
    np.testing.assert_allclose(np.diff(roots), np.sqrt(1e3) / 10, rtol=1e-12)
    cube = S.Polynomial(1.0, 9.0, steps=2, power=3.0)
    assert cube(1) == pytest.approx(1.0 + 8.0 / 8)
    assert cube.span == 2.0


def test_join_counts_each_piece_from_its_boundary():
    s = S.Join([S.Constant(2.0), S.Linear(0.0, 1.0, 10), S.Constant(7.0)], boundaries=[5, 20])
    assert [s(0), s(4), s(5), s(10), s(19), s(20), s(99)] == [2.0, 2.0, 0.0, 0.5, 1.0, 7.0, 7.0]
    assert s.span == 20.0


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_monotone_non_decreasing_and_settled_after_span(schedule):
    values = np.array([schedule(c) for c in range(0, 600)])
    if not isinstance(schedule, S.Join):
        assert np.all(np.diff(values) >= -1e-12)
    span = schedule.span
    assert span is not None
    assert schedule(span) == schedule(span + 1000)


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_config_round_trip_and_repr(schedule):
    rebuilt = type(schedule).from_config(schedule.get_config())
    assert rebuilt == schedule
    via_keras = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert via_keras == schedule
    assert [via_keras(c) for c in (0, 7, 333)] == [schedule(c) for c in (0, 7, 333)]
    assert repr(schedule).startswith(type(schedule).__name__ + "(")
    assert S.get(keras.saving.serialize_keras_object(schedule)) == schedule


def test_get_accepts_numbers_and_rejects_others():
    assert S.get(0.5) == S.Constant(0.5)
    with pytest.raises(TypeError, match=r"`schedule` must be .* Received: schedule='fast'"):
        S.get("fast")


def test_huge_counts_do_not_overflow():
    assert S.Exponential(1e-4, 2.0, 1, 1e6)(1e9) == 1e6
    assert S.TwoPhaseExponential()(1e9) == 1e6
    assert math.isfinite(S.Geometric(1e-4, 1e6, 10)(1e12))


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: S.Exponential(initial=-1.0),
            ValueError,
            r"`initial` must be a positive number. Received: initial=-1.0",
        ),
        (lambda: S.Exponential(initial=0.0), ValueError, r"Received: initial=0.0"),
        (
            lambda: S.Exponential(every=0),
            ValueError,
            r"`every` must be an integer >= 1. Received: every=0",
        ),
        (
            lambda: S.Exponential(every=1.5),
            TypeError,
            r"`every` must be an integer >= 1. Received: every=1.5",
        ),
        (
            lambda: S.Exponential(factor=0.0),
            ValueError,
            r"`factor` must be a positive number. Received: factor=0.0",
        ),
        (lambda: S.Exponential(factor=-2.0), ValueError, r"Received: factor=-2.0"),
        (
            lambda: S.Exponential(initial=1.0, maximum=0.5),
            ValueError,
            r"`maximum` must be a number >= 1. Received: maximum=0.5",
        ),
        (
            lambda: S.TwoPhaseExponential(factor=1.0),
            ValueError,
            r"`factor` must be a number > 1. Received: factor=1.0",
        ),
        (
            lambda: S.Constant(-0.1),
            ValueError,
            r"`value` must be a number >= 0. Received: value=-0.1",
        ),
        (
            lambda: S.Constant(float("inf")),
            ValueError,
            r"`value` must be a finite number. Received: value=inf",
        ),
        (
            lambda: S.Linear(0.0, 1.0, steps=0),
            ValueError,
            r"`steps` must be an integer >= 1. Received: steps=0",
        ),
        (
            lambda: S.Linear(0.0, 1.0, steps=5, delay=-1),
            ValueError,
            r"`delay` must be an integer >= 0. Received: delay=-1",
        ),
        (
            lambda: S.Geometric(0.0, 1.0, steps=5),
            ValueError,
            r"`start` must be a positive number. Received: start=0.0",
        ),
        (
            lambda: S.Polynomial(0.0, 1.0, steps=5, power=0.0),
            ValueError,
            r"`power` must be a positive number. Received: power=0.0",
        ),
        (
            lambda: S.Join([S.Constant(1.0)], boundaries=[3]),
            ValueError,
            r"`boundaries` must have one entry fewer",
        ),
        (
            lambda: S.Join([S.Constant(1.0)] * 3, boundaries=[5, 5]),
            ValueError,
            r"strictly increasing",
        ),
        (
            lambda: S.Constant(1.0)(-1),
            ValueError,
            r"`count` must be a finite number >= 0. Received: count=-1",
        ),
        (
            lambda: S.Constant(1.0)("x"),
            TypeError,
            r"`count` must be a number >= 0. Received: count='x'",
        ),
    ],
)
def test_bad_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


COUNTS = [0, 1, 2.5, 4, 5, 7, 19, 20, 21, 40, 45, 70, 75, 119, 120, 264, 265, 333, 1e4, 1e9]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_ops_value_equals_the_python_value_at_chosen_counts(schedule):
    config = schedule.get_config()
    got = keras.ops.convert_to_numpy(schedule.ops_value(np.array(COUNTS, "float32")))
    assert got.dtype == np.float32 and got.shape == (len(COUNTS),)
    want = np.array([schedule(c) for c in COUNTS])
    # float32 arithmetic: within a few float32 roundings of the float64 value
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-30)
    assert schedule.get_config() == config  # evaluating changes nothing
    assert type(schedule).from_config(config) == schedule
    # a scalar count, as the layer passes it, gives a scalar
    assert float(S.ops_value(schedule, 7.0)) == pytest.approx(schedule(7), rel=1e-6)


def test_ops_value_is_exact_on_the_powers_of_an_exact_factor():
    # 2 and 1.25 are exact in float32, so the paper's schedule is computed without drift:
    # the first phase (1e-4 * 2 ** k) exactly, the second (g1 * 1.25 ** j, g1 rounded
    # to float32 first) within one float32 step of the float64 value.
    s = S.TwoPhaseExponential()
    counts = np.arange(0, 400, 5, dtype="float32")
    got = keras.ops.convert_to_numpy(s.ops_value(counts))
    want = np.array([s(c) for c in counts], "float32")
    first = counts < 120
    np.testing.assert_array_equal(got[first], want[first])
    np.testing.assert_array_max_ulp(got, want, maxulp=1)
    assert got[-1] == 1e6


def test_ops_value_of_a_keras_learning_rate_schedule_and_plain_callables():
    lr_like = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=1, decay_rate=2.0)
    assert S.in_graph(lr_like) and S.in_graph(S.Constant(1.0))
    assert float(S.ops_value(lr_like, 3.0)) == 8.0
    assert not S.in_graph(lambda n: n)
    with pytest.raises(TypeError, match=r"evaluated in keras.ops. Received: schedule=<function"):
        S.ops_value(lambda n: n, 1.0)


def test_get_accepts_callables_and_learning_rate_schedules():
    def fn(n):
        return 2.0 * n

    assert S.get(fn) is fn
    lr_like = keras.optimizers.schedules.PolynomialDecay(1.0, 10, 3.0)
    assert S.get(lr_like) is lr_like
    rebuilt = S.get(keras.saving.serialize_keras_object(lr_like))
    assert isinstance(rebuilt, keras.optimizers.schedules.PolynomialDecay)
    assert float(rebuilt(5)) == pytest.approx(2.0)
    for bad in (True, [1, 2], "fast", S.Constant):
        with pytest.raises(TypeError, match=r"`schedule` must be a keras_lpc.schedules"):
            S.get(bad)


def test_default_schedule_and_budget_live_in_schedules():
    assert S.default_schedule() == S.Polynomial(0.0, 1e3, steps=1000, power=2.0)
    assert S.default_schedule(1e-3) == S.Constant(1e-3)
    assert S.gamma_budget(4500, 1e-3) == pytest.approx(S.DEFAULT_MAXIMUM)
