"""The one Scorer (`keras_lpc.robustness._core`): scores before the softmax, compiled batches."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from _attack_models import linear, two_class
from keras import ops

from keras_lpc.robustness import Scorer, deepfool, lipschitz
from keras_lpc.robustness._core import batches, bounds, per_input


def test_softmax_output_uses_logits(rng):
    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    x = rng.normal(size=(8, 5)).astype("float32")
    plain = deepfool(linear(w, b), x)
    soft = deepfool(linear(w, b, activation="softmax"), x)
    np.testing.assert_allclose(soft.per_sample, plain.per_sample, rtol=1e-5)
    layered = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3), keras.layers.Softmax()])
    layered.set_weights([w.astype("float32"), b.astype("float32")])
    lp = lipschitz(layered, x)
    assert lp.mean == pytest.approx(lipschitz(linear(w, b), x).mean, rel=1e-5)


def test_softmax_found_in_the_graph_or_stated(rng):
    """A graph softmax is skipped silently; values alone only warn; `outputs=` says what it is."""
    import warnings

    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    x = rng.normal(size=(8, 5)).astype("float32")
    plain = deepfool(linear(w, b), x)
    inp = keras.Input((5,))
    dense = keras.layers.Dense(3)
    graph = keras.Model(inp, keras.ops.softmax(dense(inp)))  # keras.ops.softmax as the last op
    dense.set_weights([w.astype("float32"), b.astype("float32")])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        found = deepfool(graph, x)
    np.testing.assert_allclose(found.per_sample, plain.per_sample, rtol=1e-5)
    opaque = keras.Model(inp, keras.layers.Lambda(lambda t: keras.ops.softmax(t))(dense(inp)))
    with pytest.warns(UserWarning, match="look like probabilities.*outputs='probabilities'"):
        deepfool(opaque, x)
    # log p has the logits' class differences and gradients: the same DeepFool
    stated = deepfool(opaque, x, outputs="probabilities")
    np.testing.assert_allclose(stated.per_sample, plain.per_sample, rtol=1e-4)
    lip = lipschitz(opaque, x, outputs="probabilities")
    np.testing.assert_allclose(lip.per_sample, lipschitz(linear(w, b), x).per_sample, rtol=1e-4)


def test_logits_that_look_like_probabilities_are_measured(rng):
    """Logits rows such as [1, 0, 0] are no longer refused: a warning, or none with outputs=."""
    import warnings

    # f = (x_0, 1 - x_0, 0) on inputs x_0 in {0, 1}: every row is one-hot
    model = linear(np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]), np.array([0.0, 1.0, 0.0]))
    x = np.array([[1.0, 2.0], [0.0, 2.0]], "float32")
    with pytest.warns(UserWarning, match="look like probabilities"):
        auto = deepfool(model, x, overshoot=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        said = deepfool(model, x, overshoot=0.0, outputs="logits")
    # f_0 - f_1 = 2 x_0 - 1: the boundary x_0 = 1/2 lies 1/2 away from both inputs
    expected = (0.5 + 1e-4) / np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(said.per_sample, expected, rtol=1e-5)
    np.testing.assert_allclose(auto.per_sample, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="`outputs` must be one of 'auto', 'logits'"):
        deepfool(model, x, outputs="softmax")


def test_compiled_attacks_follow_new_weights_and_batch_sizes(rng):
    """Compiled functions are cached per model but read the current weights at every call."""
    x = rng.normal(size=(19, 5)).astype("float32")
    model = linear(rng.normal(size=(5, 4)), rng.normal(size=4))
    deepfool(model, x, batch_size=7)
    lipschitz(model, x)
    for _ in range(2):
        w, b = rng.normal(size=(5, 4)), rng.normal(size=4)
        model.set_weights([w.astype("float32"), b.astype("float32")])
        res = deepfool(model, x, overshoot=0.0, batch_size=7)
        f = x.astype("float64") @ w + b
        k0 = f.argmax(1)
        gap = f - f[np.arange(len(x)), k0][:, None]
        norm = np.linalg.norm(w.T[None, :, :] - w.T[k0][:, None, :], axis=2)  # (N, C)
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.where(norm > 0, np.abs(gap) / norm, np.inf).min(axis=1)
        np.testing.assert_allclose(
            res.per_sample, (dist + 1e-4) / np.linalg.norm(x, axis=1), rtol=1e-5
        )
        y = rng.integers(0, 4, size=len(x))
        f[np.arange(len(x)), y] = -np.inf
        margin = np.linalg.norm(w[:, y] - w[:, f.argmax(1)], axis=0)
        np.testing.assert_allclose(lipschitz(model, x, y).per_sample, margin, rtol=1e-5)


def test_model_outputs_in_a_list_or_dict(rng):
    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    x = rng.normal(size=(8, 5)).astype("float32")
    inp = keras.Input((5,))
    dense = keras.layers.Dense(3)
    out = dense(inp)
    # a dict's first output is the first key in sorted order (Keras' flattening order)
    as_dict = keras.Model(inp, {"z_other": keras.layers.Dense(2)(inp), "logits": out})
    dense.set_weights([w.astype("float32"), b.astype("float32")])
    expected = lipschitz(linear(w, b), x).per_sample
    np.testing.assert_allclose(lipschitz(as_dict, x).per_sample, expected, rtol=1e-5)
    as_list = keras.Model(inp, [out, out])
    np.testing.assert_allclose(lipschitz(as_list, x).per_sample, expected, rtol=1e-5)


def test_forward_predict_vjp_and_run_in_closed_form():
    # f = (x_0, -x_0): scores, labels, the gradient of f_0 - f_1 = (2, 0), and a loop
    scorer = Scorer(two_class(), batch_size=3)
    x = np.array([[3.0, 4.0], [-1.0, 2.0], [0.5, 0.0], [-2.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(scorer.forward(x), np.stack([x[:, 0], -x[:, 0]], axis=1))
    assert scorer.classes == 2 and scorer.dtype == "float32"
    np.testing.assert_array_equal(scorer.predict(x), [0, 1, 0, 1, 0])

    def diff(scores, aux):  # e_0 - e_1 per row
        return ops.expand_dims(ops.one_hot(aux * 0, 2) - ops.one_hot(aux * 0 + 1, 2), 0)

    scores, grads = scorer.vjp(x, diff, np.zeros(5, "int32"))
    assert scores.dtype == grads.dtype == np.float64 and grads.shape == (1, 5, 2)
    np.testing.assert_allclose(grads[0], np.tile([2.0, 0.0], (5, 1)))

    def make(fn):  # a "loop": the score margin and x scaled by a setting
        return lambda x, labels, scale: (fn(x)[:, 0] - fn(x)[:, 1], x * scale)

    margin, scaled = scorer.run("test-margin", make, per_input(scorer, x, np.zeros(5)), [2.0])
    np.testing.assert_allclose(margin, 2 * x[:, 0])
    np.testing.assert_allclose(scaled, 2 * x)
    # another batch size gives the same rows
    again, _ = scorer.run(
        "test-margin", make, per_input(scorer, x, np.zeros(5)), [2.0], batch_size=8
    )
    np.testing.assert_array_equal(again, margin)


def test_batches_bounds_and_rows():
    # batches of 3 padded to 8 (the smallest bucket), the last one short
    assert batches(7, 3) == [(0, 3, 8), (3, 6, 8), (6, 7, 8)]
    assert batches(20, 256) == [(0, 20, 32)]
    lo, hi = bounds((0.0, 1.0), "float32")
    assert (lo, hi) == (0.0, 1.0) and isinstance(lo, np.float32)
    assert bounds(None, "float64") == (0.0, 0.0)
    scorer = Scorer(two_class())
    xr, labels, eps = per_input(scorer, np.ones((2, 2)), np.array([1, 0]), np.array([0.5, 1.0]))
    assert (xr.dtype, labels.dtype, eps.dtype) == (np.float32, np.int32, np.float32)


def test_scorer_settings_and_errors():
    model = two_class()
    assert Scorer(model, batch_size=4).query_batch_size == 64  # 16x: forward passes only
    assert Scorer(model, query_batch_size=5).query_batch_size == 5
    with pytest.raises(TypeError, match="`model` must be a Keras model. Received: model='m'"):
        Scorer("m")
    with pytest.raises(
        ValueError, match="`batch_size` must be an integer >= 1. Received: batch_size=0"
    ):
        Scorer(model, batch_size=0)
    with pytest.raises(
        ValueError, match="`query_batch_size` must be an integer >= 1. Received: query_batch_size=0"
    ):
        Scorer(model, query_batch_size=0)
    with pytest.raises(
        ValueError, match="`outputs` must be one of 'auto', 'logits', 'probabilities'"
    ):
        Scorer(model, outputs="softmax")
    with pytest.raises(ValueError, match="at least 2 class scores.*with 1 output"):
        Scorer(linear(np.ones((2, 1)), np.zeros(1))).forward(np.ones((1, 2)))
