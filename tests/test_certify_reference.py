"""The compiled bounds against the float64 NumPy reference CROWN (tests/_certify_reference.py).

Small chain-shaped networks with every kind of activation and max pooling:
the lower bounds of every ``f_y - f_j`` at fixed radii agree to float32
precision, and so do the certified radii.
"""

from __future__ import annotations

import _certify_reference as reference
import keras
import numpy as np
import pytest
from keras import layers, ops

from keras_lpc import backend
from keras_lpc.robustness import certified_radius
from keras_lpc.robustness.certify import _setup as certify_setup


def _models():
    rng = np.random.default_rng(5)
    mlp = keras.Sequential(
        [
            keras.Input((6,)),
            layers.Dense(12, activation="silu"),
            layers.Dense(10, activation="relu"),
            layers.Dense(8, activation="gelu"),
            layers.Dense(4),
        ]
    )
    cnn = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            layers.Conv2D(3, 3, padding="same", activation="tanh"),
            layers.MaxPooling2D(2),
            layers.Conv2D(4, 2, activation="sigmoid"),
            layers.Flatten(),
            layers.Dense(6, activation="leaky_relu"),
            layers.Dense(3),
        ]
    )
    out = []
    for model in (mlp, cnn):
        for v in model.variables:
            v.assign(
                (rng.normal(size=v.shape) * (0.1 if "bias" in v.path else 0.7)).astype("float32")
            )
        out.append((model, rng.normal(size=(5, *model.inputs[0].shape[1:])).astype("float32")))
    return out


@pytest.fixture(scope="module")
def models():
    return _models()


def _ours(model, x, eps, norm):
    """The library's lower bounds ``c - eps d`` (C, N) of one compiled CROWN pass."""
    setup = certify_setup.Setup(model, x, None, norm, "crown", None, None)

    def bounds(x0, labels, radius, *radii):
        spec = certify_setup.spec(labels, setup.graph.classes)
        values = setup.graph.forward(x0)
        c, d = setup.passes(radius, spec, x0, values, dict(zip(setup.ids, radii)))
        return c - radius[None] * d

    run = backend.jit(bounds, model.variables)
    radii = [setup.radii[i] for i in setup.ids]
    out = run(setup.x, setup.labels.astype("int32"), np.full(len(x), eps, "float32"), *radii)
    return ops.convert_to_numpy(out), setup.labels


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("index", [0, 1])
def test_bounds_match_the_float64_reference(models, index, norm):
    model, x = models[index]
    layers_, _ = reference.layers_of(model)
    classes = model.outputs[0].shape[-1]
    for eps in (0.02, 0.1):
        ours, labels = _ours(model, x, eps, norm)
        for n in range(len(x)):
            spec = np.eye(classes)[labels[n]][None] - np.eye(classes)
            want = reference.lower_bounds(
                layers_, x[n].reshape(-1).astype("float64"), spec, eps, norm
            )
            np.testing.assert_allclose(ours[:, n], want, rtol=2e-4, atol=2e-4 * np.abs(want).max())


def test_radii_match_the_float64_reference(models):
    model, x = models[0]
    layers_, _ = reference.layers_of(model)
    res = certified_radius(model, x[:3], method="crown", rtol=1e-4, steps=30)
    want = [
        reference.radius(layers_, x[n].reshape(-1).astype("float64"), res.labels[n], 4, "l2")
        for n in range(3)
    ]
    np.testing.assert_allclose(res.distance, want, rtol=2e-3)
