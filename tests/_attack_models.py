"""Small models with known answers for the robustness tests (tests/test_<module>.py).

Linear classifiers, whose distance to the decision boundary is known in closed
form, and small MLPs; the weights come from NumPy, so a model is the same on
every backend.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from keras import ops

from keras_lpc.robustness import Scorer, cast_model


def linear(w, b, activation=None):
    """``Dense`` with kernel ``w`` (d, C) and bias ``b`` (C,), float32."""
    model = keras.Sequential(
        [keras.Input((w.shape[0],)), keras.layers.Dense(w.shape[1], activation=activation)]
    )
    model.set_weights([w.astype("float32"), b.astype("float32")])
    return model


def two_class():
    """``f = (x_0, -x_0)`` on 2 inputs: the boundary ``x_0 = 0``, margin ``2 x_0``."""
    return linear(np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2))


def closed_form(w, b, x, norm):
    """Distance from each x to the nearest other-class region of a linear classifier,
    relative to ``||x||`` (L2, or L-inf with the dual L1 norm of ``w_j - w_k``)."""
    f = x.astype("float64") @ w + b
    k0 = f.argmax(1)
    rows = np.arange(len(x))
    dist = np.full(len(x), np.inf)
    for j in range(w.shape[1]):
        wj = w[:, [j]] - w[:, k0]  # (d, n)
        size = np.linalg.norm(wj, ord=2 if norm == "l2" else 1, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (f[rows, k0] - f[:, j]) / size
        dist = np.where(k0 == j, dist, np.minimum(dist, d))
    return dist / np.linalg.norm(x.reshape(len(x), -1), ord=2 if norm == "l2" else np.inf, axis=1)


def mlp(rng, n=32, d=6, hidden=16, classes=4):
    """An untrained ReLU MLP (Keras' initialisation) and ``n`` Gaussian inputs."""
    model = keras.Sequential(
        [
            keras.Input((d,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(classes),
        ]
    )
    return model, rng.normal(size=(n, d)).astype("float32")


def tiny():
    """A tanh MLP with weights drawn by NumPy (the same model on every backend), 12 inputs
    and their predicted labels."""
    rng = np.random.default_rng(7)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(12, activation="tanh"), keras.layers.Dense(4)]
    )
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    x = rng.uniform(-1.0, 1.0, size=(12, 5)).astype("float32")
    return model, x, np.argmax(Scorer(model).forward(x), axis=1)


def tiny_float64():
    """`tiny` in float64 (`cast_model`): ``(model, x, labels)``; skips where Keras computes
    float64 in float32 (JAX, PyTorch)."""
    if not keras_computes_float64():
        pytest.skip("float64 runs on the TensorFlow backend only (see cast_model)")
    model, x, labels = tiny()
    return cast_model(model), x.astype("float64"), labels


def keras_computes_float64() -> bool:
    """Whether Keras ops compute float64 on this backend (TensorFlow only)."""
    return keras.backend.result_type("float64", "float64") == "float64"


class Quantise(keras.layers.Layer):
    """``round(4 x) / 4``: an input quantiser whose gradient is exactly zero."""

    def call(self, x):
        return ops.stop_gradient(ops.round(4.0 * x) / 4.0) + 0.0 * x


def quantised(rng, d=4, classes=3):
    """``W round(4 x) / 4 + b`` on [0, 1]^d and the exact L2 / L-inf distances from ``x``
    to the closest box of levels whose class differs (5^d boxes enumerated)."""
    w, b = rng.normal(size=(d, classes)), rng.normal(size=classes)
    head = linear(w, b)
    model = keras.Sequential([keras.Input((d,)), Quantise(), head])
    x = rng.uniform(0.0, 1.0, size=(16, d))
    levels = np.array(list(itertools.product(range(5), repeat=d))) / 4.0  # (5^d, d)
    cls = (levels @ w + b).argmax(1)
    lo, hi = np.maximum(levels - 0.125, 0.0), np.minimum(levels + 0.125, 1.0)
    gap = np.maximum(np.maximum(lo[None] - x[:, None], x[:, None] - hi[None]), 0.0)
    labels = (np.round(4 * x) / 4 @ w + b).argmax(1)
    other = cls[None] != labels[:, None]
    exact = {
        "l2": np.where(other, np.linalg.norm(gap, axis=2), np.inf).min(axis=1),
        "linf": np.where(other, gap.max(axis=2), np.inf).min(axis=1),
    }
    return model, x, labels, exact
