"""DeepFool (`keras_lpc.robustness.deepfool`) against closed forms and per-sample references."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
from _attack_models import linear, mlp

from keras_lpc import backend
from keras_lpc.robustness import Scorer, deepfool
from keras_lpc.robustness.deepfool import deepfool_attack


def _rows(scores, aux):
    onehot = keras.ops.one_hot(aux, keras.ops.shape(scores)[1], dtype=scores.dtype)
    return keras.ops.transpose(onehot, (1, 0, 2))


def candidate_jacobian(fn, x, classes):
    """Scores (N, C) and Jacobian rows (N, K, ...) of ``fn`` for ``classes`` (N, K)."""
    if fn not in _JIT:  # compiled once per score function
        _JIT[fn] = backend.jit(lambda x, c: backend.vjp(fn, x, _rows, c))
    n, size = len(x), backend.bucket(len(x))
    scores, grads = _JIT[fn](backend.pad(x, size), backend.pad(np.asarray(classes, "int32"), size))
    return (
        np.asarray(keras.ops.convert_to_numpy(scores))[:n],
        np.moveaxis(np.asarray(keras.ops.convert_to_numpy(grads)), 0, 1)[:n],
    )


_JIT = {}


def test_deepfool_linear_closed_form(rng):
    w, b = rng.normal(size=(5, 4)), rng.normal(size=4)
    x = rng.normal(size=(20, 5)).astype("float32")
    res = deepfool(linear(w, b), x, overshoot=0.02)
    f = x.astype("float64") @ w + b
    k0 = f.argmax(1)
    dist = np.full(len(x), np.inf)
    for j in range(4):
        norm = np.linalg.norm(w[:, j][None] - w[:, k0].T, axis=1)
        gap = np.abs(f[:, j] - f[np.arange(len(x)), k0])
        d = np.divide(gap, norm, out=np.full(len(x), np.inf), where=norm > 0)
        dist = np.minimum(dist, d)
    expected = 1.02 * (dist + 1e-4) / np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(res.per_sample, expected, rtol=1e-5)
    assert res.fooled.all() and (res.iterations == 1).all()
    assert res.score == pytest.approx(expected.mean(), rel=1e-5)


def _reference_deepfool(model, x, overshoot=0.02, max_iter=50, candidates=10):
    """One input at a time, straight from the algorithm's description."""
    fn = Scorer(model).fn
    out = []
    for xi in x:
        f0 = np.asarray(keras.ops.convert_to_numpy(fn(xi[None])))[0]
        order = np.argsort(-f0, kind="stable")[:candidates]
        r_tot = np.zeros_like(xi, dtype="float64")
        for _ in range(max_iter):
            xa = (xi + (1 + overshoot) * r_tot).astype("float32")[None]
            s, jac = candidate_jacobian(fn, xa, order[None])
            if s[0].argmax() != order[0]:
                break
            best, w_best = np.inf, None
            for k in range(1, len(order)):
                w_k = jac[0, k].astype("float64") - jac[0, 0]
                d = abs(s[0, order[k]] - s[0, order[0]]) / np.linalg.norm(w_k)
                if d < best:
                    best, w_best = d, w_k
            r_tot = r_tot + (best + 1e-4) * w_best / np.linalg.norm(w_best)
        out.append((1 + overshoot) * r_tot)
    return np.array(out)


def _numpy_loop_deepfool(model, x, overshoot=0.02, max_iter=50, candidates=10, clip=None):
    """The previous implementation: batched, active set gathered on the host, float64 NumPy."""
    fn = Scorer(model).fn
    x = np.asarray(x, "float32")
    scores = np.asarray(keras.ops.convert_to_numpy(fn(x)), "float64")
    k = min(candidates, scores.shape[1])
    classes = np.argsort(-scores, axis=1, kind="stable")[:, :k].astype("int32")
    label = classes[:, 0]
    r_tot = np.zeros(x.shape)
    fooled = np.zeros(len(x), bool)
    active = np.arange(len(x))
    for step in range(max_iter + 1):
        if active.size == 0:
            break
        xa = x[active] + (1 + overshoot) * r_tot[active]
        xa = (np.clip(xa, *clip) if clip else xa).astype("float32")
        s, jac = candidate_jacobian(fn, xa, classes[active])
        s, jac = s.astype("float64"), jac.astype("float64")
        still = s.argmax(1) == label[active]
        fooled[active[~still]] = True
        if step == max_iter:
            break
        active, s, jac = active[still], s[still], jac[still]
        if active.size == 0:
            break
        rows = np.arange(active.size)
        w = (jac[:, 1:] - jac[:, :1]).reshape(active.size, k - 1, -1)
        f = np.take_along_axis(s, classes[active, 1:], 1) - s[rows, label[active], None]
        norm = np.linalg.norm(w, axis=2)
        dist = np.where(norm > 0, np.abs(f) / np.where(norm > 0, norm, 1), np.inf)
        best = dist.argmin(1)
        d, nb = dist[rows, best], norm[rows, best]
        r_i = np.where(np.isfinite(d), (d + 1e-4) / nb, 0.0)[:, None] * w[rows, best]
        r_tot[active] += r_i.reshape((active.size, *x.shape[1:]))
    r = (1 + overshoot) * r_tot
    return (np.clip(x + r, *clip) - x if clip else r), fooled


def test_compiled_deepfool_equals_the_numpy_loop(rng):
    model, x = mlp(rng)
    for kwargs in ({}, {"clip": (-0.5, 0.5)}, {"candidates": 3, "max_iter": 3}):
        xs = np.clip(x, *kwargs["clip"]) if "clip" in kwargs else x  # the box holds the inputs
        ref, ref_fooled = _numpy_loop_deepfool(model, xs, **kwargs)
        res = deepfool(model, xs, batch_size=16, **kwargs)
        np.testing.assert_allclose(res.perturbation, ref, rtol=1e-5, atol=1e-6)
        assert res.fooled.tolist() == ref_fooled.tolist()


def test_deepfool_batched_matches_per_sample_reference(rng):
    model, x = mlp(rng)
    res = deepfool(model, x, batch_size=13)
    ref = _reference_deepfool(model, x)
    np.testing.assert_allclose(res.perturbation, ref, rtol=1e-4, atol=1e-6)
    # A ReLU kink can make one input cycle for 50 steps; given more, all flip.
    assert res.fooled.mean() >= 0.95
    assert deepfool(model, x, max_iter=200).fooled.mean() >= 0.99


def test_deepfool_score_correct_and_clip(rng):
    model, x = mlp(rng)
    pred = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    y = pred.copy()
    y[:8] = (pred[:8] + 1) % 4
    res = deepfool(model, x, y=y)
    assert res.score_correct == pytest.approx(res.per_sample[8:][res.fooled[8:]].mean(), rel=1e-6)
    inside = np.clip(x, -0.5, 0.5)
    clipped = deepfool(model, inside, clip=(-0.5, 0.5))
    assert np.all(np.abs(inside + clipped.perturbation) <= 0.5 + 1e-6)


def _relu_gate():
    # h = relu(x_0); f = (h, 0.5): x_0 = 3 flips at x_0 = 0.5, x_0 = -3 has zero gradients
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(1, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    model.set_weights(
        [np.array([[1.0], [0.0]]), np.zeros(1), np.array([[1.0, 0.0]]), np.array([0.0, 0.5])]
    )
    return model


def test_deepfool_reports_unflipped_inputs_separately():
    model = _relu_gate()
    x = np.array([[3.0, 4.0], [-3.0, 4.0]], "float32")
    with pytest.warns(UserWarning, match="1 of 2 inputs did not flip within max_iter=50"):
        res = deepfool(model, x, y=[0, 1])
    flipped = 1.02 * (2.5 + 1e-4) / 5.0
    np.testing.assert_allclose(res.per_sample, [flipped, np.inf], rtol=1e-5)
    assert res.fooled.tolist() == [True, False]
    assert res.unflipped == 1 and res.flipped_fraction == 0.5
    assert res.score == pytest.approx(flipped, rel=1e-5)
    assert res.score_correct == pytest.approx(flipped, rel=1e-5)
    assert res.iterations.tolist() == [1, 50]  # steps taken, zero-gradient ones included
    np.testing.assert_allclose(res.perturbation[1], [0.0, 0.0])
    with pytest.warns(UserWarning):
        only_unflipped = deepfool(model, x[1:], y=[1])
    assert np.isnan(only_unflipped.score) and np.isnan(only_unflipped.score_correct)
    assert only_unflipped.unflipped == 1 and only_unflipped.flipped_fraction == 0.0


def test_zero_cotangents_give_zero_products_and_deepfool_stops_after_the_flip():
    # f_0 - f_1 = 2 x_0: one DeepFool step flips (3, 4); the second step sees every input
    # flipped (its cotangents are zero) and the loop stops there
    model = linear(np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2))
    fn = Scorer(model).fn
    x = keras.ops.convert_to_tensor(np.array([[3.0, 4.0], [-1.0, 2.0]], "float32"))
    zero = lambda s, aux: keras.ops.zeros((2, *keras.ops.shape(s)))  # noqa: E731
    scores, grads = backend.vjp(fn, x, zero, None)
    assert keras.ops.convert_to_numpy(grads).shape == (2, 2, 2)
    assert not np.any(keras.ops.convert_to_numpy(grads))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scores), [[3, -3], [-1, 1]])
    res = deepfool(model, np.array([[3.0, 4.0]], "float32"), overshoot=0.0)
    np.testing.assert_allclose(res.perturbation, [[-3.0001, 0.0]], rtol=1e-6)
    assert res.iterations.tolist() == [1] and res.fooled.tolist() == [True]


def test_the_ensemble_attack_is_deepfool_with_max_iter_budget(rng):
    # the registered "deepfool" attack: deepfool's perturbations with max_iter = budget,
    # on the scorer it is given (labels, norm and rng play no part)
    model, x = mlp(rng)
    x = np.clip(x, -0.5, 0.5)  # inside the box
    scorer = Scorer(model, batch_size=16)
    labels = scorer.predict(x)
    for budget in (1, 3):
        r = deepfool_attack(
            scorer, x, labels, norm="linf", budget=budget, clip=(-0.5, 0.5), rng=None
        )
        with warnings.catch_warnings():  # inputs that do not flip in so few steps
            warnings.simplefilter("ignore")
            expected = deepfool(model, x, max_iter=budget, clip=(-0.5, 0.5)).perturbation
        np.testing.assert_array_equal(r, expected)
