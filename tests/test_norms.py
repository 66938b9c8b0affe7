"""Norms, projections and the random start (`keras_lpc.robustness._norms`)."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_lpc.robustness._norms import (
    Tracker,
    clip_delta,
    draw_start,
    dual_norm,
    dual_norm_of,
    keep_smallest,
    lp_norm,
    norm_of,
    per_row,
    project,
    steepest,
)


def _np(t):
    return np.asarray(ops.convert_to_numpy(t))


def test_norms_on_the_host_and_on_tensors():
    a = np.array([[3.0, -4.0], [0.0, 0.0]])
    np.testing.assert_allclose(lp_norm(a, "l2"), [5.0, 0.0])
    np.testing.assert_allclose(lp_norm(a, "linf"), [4.0, 0.0])
    np.testing.assert_allclose(dual_norm(a, "l2"), [5.0, 0.0])
    np.testing.assert_allclose(dual_norm(a, "linf"), [7.0, 0.0])
    t = ops.convert_to_tensor(a.astype("float32"))
    np.testing.assert_allclose(_np(norm_of(t, "l2")), [5.0, 0.0])
    np.testing.assert_allclose(_np(norm_of(t, "linf")), [4.0, 0.0])
    np.testing.assert_allclose(_np(dual_norm_of(t, "linf")), [7.0, 0.0])


def test_steepest_project_clip_and_keep_smallest():
    g = ops.convert_to_tensor(np.array([[3.0, -4.0], [0.0, 0.0]], "float32"))
    np.testing.assert_allclose(_np(steepest(g, "l2")), [[0.6, -0.8], [0.0, 0.0]])
    np.testing.assert_allclose(_np(steepest(g, "linf")), [[1.0, -1.0], [0.0, 0.0]])
    eps = ops.convert_to_tensor(np.array([1.0, 1.0], "float32"))
    np.testing.assert_allclose(_np(project(g, eps, "l2")), [[0.6, -0.8], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(_np(project(g, eps, "linf")), [[1.0, -1.0], [0.0, 0.0]])
    x = ops.convert_to_tensor(np.array([[0.5, 0.5], [0.0, 0.0]], "float32"))
    np.testing.assert_allclose(_np(clip_delta(x, g, (0.0, 1.0))), [[0.5, -0.5], [0.0, 0.0]])
    assert clip_delta(x, g, None) is g
    best_size, best = keep_smallest(
        g,
        ops.convert_to_tensor(np.array([5.0, 0.0], "float32")),
        ops.convert_to_tensor(np.array([True, False])),
        ops.convert_to_tensor(np.array([6.0, 1.0], "float32")),
        ops.zeros_like(g),
    )
    np.testing.assert_allclose(_np(best_size), [5.0, 1.0])  # not adversarial: kept
    np.testing.assert_allclose(_np(best), [[3.0, -4.0], [0.0, 0.0]])


def test_random_start_fills_the_ball():
    rng = np.random.default_rng(0)
    x = np.zeros((4000, 3))
    eps = np.full(4000, 2.0)
    linf = draw_start(x, eps, "linf", rng)
    assert np.abs(linf).max() <= 2.0 and abs(linf.mean()) < 0.05
    l2 = draw_start(x, eps, "l2", rng)
    r = np.linalg.norm(l2, axis=1)
    # uniform in the 3-ball of radius 2: P(r <= 1) = (1/2)^3
    assert r.max() <= 2.0 and abs(np.mean(r <= 1.0) - 0.125) < 0.02


def test_tracker_keeps_the_smallest_adversarial():
    t = Tracker(np.zeros((2, 2)), "l2")
    t.see(np.array([[3.0, 4.0], [1.0, 0.0]]), np.array([True, False]))
    t.see(np.array([[0.0, 1.0], [0.0, 2.0]]), np.array([True, True]))
    np.testing.assert_allclose(t.size, [1.0, 2.0])
    assert t.found.all()
    t.see(np.array([[0.0, 3.0], [0.0, 0.5]]), np.array([True, False]))  # larger, or not adv
    np.testing.assert_allclose(t.delta, [[0.0, 1.0], [0.0, 2.0]])


def test_per_row_broadcasts_per_sample_values_with_or_without_leading_axes():
    like = ops.zeros((2, 3, 4))
    assert tuple(per_row(ops.convert_to_tensor([1.0, 2.0]), like).shape) == (2, 1, 1)
    t = ops.convert_to_tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # (k, n) = (3, 2)
    got = _np(per_row(t, like) * ops.ones((2, 3, 4)))
    assert got.shape == (3, 2, 3, 4)
    np.testing.assert_array_equal(got[2, 1], np.full((3, 4), 6.0))
