"""The radius search (`keras_lpc.robustness.radius`): first-order radius and bisection."""

from __future__ import annotations

import numpy as np
from _attack_models import linear, two_class

from keras_lpc.robustness import Scorer
from keras_lpc.robustness._norms import Tracker
from keras_lpc.robustness.radius import STAGES, bisect_min_norm, first_order_radius, search


def test_first_order_radius_is_the_linear_distance(rng):
    # on a linear model the linearisation is exact: |margin| / ||w_y - w_m||_*
    w, b = rng.normal(size=(4, 2)), rng.normal(size=2)
    x = rng.normal(size=(9, 4))
    scorer = Scorer(linear(w, b))
    labels = scorer.predict(x)
    margin = np.abs(x @ (w[:, 0] - w[:, 1]) + b[0] - b[1])
    for norm, dual in (("l2", 2), ("linf", 1)):
        expected = margin / np.linalg.norm(w[:, 0] - w[:, 1], ord=dual)
        np.testing.assert_allclose(first_order_radius(scorer, x, labels, norm), expected, rtol=1e-5)
    # a misclassified input (negative margin) or a zero gradient: the fallback 0.05 ||x||
    x = np.array([[3.0, 4.0], [0.0, 2.0]])
    got = first_order_radius(Scorer(two_class()), x, np.array([1, 0]), "l2")
    np.testing.assert_allclose(got, [0.25, 0.1])


def test_bisection_converges_to_the_threshold():
    # a fake fixed-radius attack that succeeds exactly at radius >= 1.5 (found at eps itself)
    x = np.zeros((3, 2))
    calls = []

    def run(xs, idx, eps):
        calls.append(eps.copy())
        found = eps >= 1.5
        delta = np.zeros_like(xs)
        delta[:, 0] = eps
        return Tracker.of(np.where(found, eps, np.inf), np.where(found[:, None], delta, 0.0), "l2")

    best = bisect_min_norm(run, x, "l2", 12, np.array([0.1, 1.0, 10.0]))
    assert len(calls) == 12
    # doubling up to a success, then shrinking and bisecting towards 1.5 from above
    np.testing.assert_allclose(calls[0], [0.1, 1.0, 10.0])
    np.testing.assert_allclose(calls[1], [0.2, 2.0, 8.0])
    assert (best[:, 0] >= 1.5).all() and (best[:, 0] < 1.51).all()


def test_search_runs_the_stages_from_the_first_order_radius():
    scorer = Scorer(two_class())
    x, labels = np.array([[3.0, 4.0]]), np.array([0])
    starts = []

    def run(xs, idx, eps):
        starts.append(eps.copy())
        return Tracker.of(np.full(len(xs), np.inf), np.zeros_like(xs), "l2")

    delta = search(scorer, x, labels, "l2", run)
    assert len(starts) == STAGES == 8
    np.testing.assert_allclose(starts[0], [1.1 * 3.0])  # 1.1 x the first-order radius
    np.testing.assert_allclose(starts[1], [2.2 * 3.0])  # no success: doubled
    np.testing.assert_array_equal(delta, np.zeros((1, 2)))
