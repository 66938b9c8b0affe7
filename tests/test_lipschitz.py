"""The Lipschitz proxy (`keras_lpc.robustness.lipschitz`) against closed forms."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from _attack_models import linear, mlp

from keras_lpc.robustness import deepfool, lipschitz


def test_lipschitz_linear_is_weight_difference(rng):
    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    x = rng.normal(size=(16, 5)).astype("float32")
    y = rng.integers(0, 3, size=16)
    res = lipschitz(linear(w, b), x, y)
    f = x @ w + b
    f[np.arange(16), y] = -np.inf
    rival = f.argmax(1)
    expected = np.linalg.norm(w[:, y] - w[:, rival], axis=0)
    np.testing.assert_allclose(res.per_sample, expected, rtol=1e-5)
    assert res.max == pytest.approx(expected.max(), rel=1e-5)
    assert res.mean == pytest.approx(expected.mean(), rel=1e-5)


def test_y_positional_or_keyword(rng):
    model, x = mlp(rng)
    y = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    assert deepfool(model, x, y).score_correct == deepfool(model, x, y=y).score_correct
    assert lipschitz(model, x, y).mean == lipschitz(model, x=x, y=y).mean
    # y defaults to the prediction
    assert lipschitz(model, x).mean == lipschitz(model, x, y).mean


def test_conv_model_matches_the_linear_map(rng):
    # a Conv2D without activation followed by Flatten and Dense is linear: its margin
    # gradient is the difference of two rows of the composed matrix
    model = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Conv2D(2, 3, use_bias=False),
            keras.layers.Flatten(),
            keras.layers.Dense(3, use_bias=False),
        ]
    )
    x = rng.normal(size=(6, 4, 4, 1)).astype("float32")
    eye = np.eye(16, dtype="float32").reshape(16, 4, 4, 1)
    a = keras.ops.convert_to_numpy(model(eye)).astype("float64")  # (16, 3): f = x_flat @ a
    f = x.reshape(6, 16).astype("float64") @ a
    y = f.argmax(1)
    other = np.where(np.eye(3)[y] > 0, -np.inf, f).argmax(1)
    expected = np.linalg.norm(a[:, y] - a[:, other], axis=0)
    np.testing.assert_allclose(lipschitz(model, x).per_sample, expected, rtol=1e-5)
    assert lipschitz(model, x).max == pytest.approx(expected.max(), rel=1e-5)
