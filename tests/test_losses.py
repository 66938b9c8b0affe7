"""The attacks' losses and their cotangents (`keras_lpc.robustness._losses`)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_lpc.robustness import Scorer
from keras_lpc.robustness._losses import loss_grad, loss_of, losses


def test_loss_gradients_match_finite_differences(rng):
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(4)]
    )
    x = rng.normal(size=(6, 5))
    labels = rng.integers(0, 4, size=6)
    scorer = Scorer(model)
    h = 1e-2
    steps = h * np.eye(5)[:, None, :]  # (5, 1, 5): one coordinate at a time
    points = np.concatenate([x[None] + steps, x[None] - steps]).reshape(-1, 5)
    scores = scorer.forward(points.astype("float32")).reshape(2, 5, 6, -1)
    for kind in ("margin", "soft-margin", "ce", "dlr"):
        _, g = loss_grad(scorer, x, labels, kind)
        up = np.stack([losses(s, labels, kind) for s in scores[0]], axis=1)
        down = np.stack([losses(s, labels, kind) for s in scores[1]], axis=1)
        np.testing.assert_allclose(g, (up - down) / (2 * h), rtol=0.05, atol=2e-3, err_msg=kind)
    # the losses on tensors (inside the compiled attacks) are the NumPy ones
    z = scorer.forward(x.astype("float32"))
    for kind in ("margin", "soft-margin", "ce", "dlr"):
        for c in (4, 2):
            on_device = loss_of(
                ops.convert_to_tensor(z[:, :c]), ops.convert_to_tensor(labels % c, "int32"), kind
            )
            np.testing.assert_allclose(
                ops.convert_to_numpy(on_device),
                losses(z[:, :c], labels % c, kind),
                rtol=1e-5,
                atol=1e-6,
                err_msg=kind,
            )


def test_losses_in_closed_form():
    # z = (3, 1, 0), y = 0: margin 2, soft margin 3 - log(e + 1), CE log(e^3 + e + 1) - 3,
    # DLR -(3 - 1) / (3 - 0); with two classes DLR is z_m - z_y
    z, y = np.array([[3.0, 1.0, 0.0]]), np.array([0])
    np.testing.assert_allclose(losses(z, y, "margin"), [2.0])
    np.testing.assert_allclose(losses(z, y, "soft-margin"), [3.0 - np.log(np.e + 1.0)])
    np.testing.assert_allclose(losses(z, y, "ce"), [np.log(np.exp(3) + np.e + 1) - 3.0])
    np.testing.assert_allclose(losses(z, y, "dlr"), [-2.0 / 3.0])
    np.testing.assert_allclose(losses(z[:, :2], y, "dlr"), [-2.0])
