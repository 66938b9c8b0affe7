"""Running the robustness measures in float64 (`keras_lpc.robustness.precision.cast_model`)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from _attack_models import keras_computes_float64, linear

from keras_lpc.robustness import cast_model, deepfool, pgd_accuracy


def test_cast_model_float64_keeps_weights_and_runs_deepfool_in_float64(rng):
    """The float64 copy predicts like the model; DeepFool on it is exact to float64 rounding."""
    if not keras_computes_float64():
        pytest.skip("float64 runs on the TensorFlow backend only (see the next test)")
    from keras_lpc import LatentPointCollapse

    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="tanh"),
            LatentPointCollapse(dim=3, gamma=2.5),
            keras.layers.Dense(4),
        ]
    )
    x = rng.normal(size=(12, 5)).astype("float32")
    copy = cast_model(model)
    # gamma and the in-graph annealing state stay float32 variables by design (the
    # penalty is accumulated in float32)
    state = ("gamma", "annealing_")
    assert all(
        str(w.dtype) == "float64" for w in copy.weights if not any(k in w.path for k in state)
    )
    assert all(str(w.dtype) == "float32" for w in copy.weights if any(k in w.path for k in state))
    assert all(str(w.dtype) == "float32" for w in model.weights)  # original untouched
    assert float(keras.ops.convert_to_numpy(copy.layers[1].gamma)) == 2.5
    np.testing.assert_allclose(
        copy.predict(x.astype("float64"), verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    # a linear model: DeepFool's closed form in float64 agrees to ~1e-12, float32 only to ~1e-7
    w, b = rng.normal(size=(5, 2)), rng.normal(size=2)
    copy64 = cast_model(linear(w, b))
    w64, b64 = copy64.get_weights()
    res = deepfool(copy64, x, overshoot=0.0)
    x64 = x.astype("float64")
    f = x64 @ w64 + b64
    wd = w64[:, 0] - w64[:, 1]
    expected = (np.abs(f[:, 0] - f[:, 1]) / np.linalg.norm(wd) + 1e-4) / np.linalg.norm(x64, axis=1)
    assert res.perturbation.dtype == np.float64
    np.testing.assert_allclose(res.per_sample, expected, rtol=1e-12)
    # the float32 original agrees only to float32 rounding
    float32_error = np.abs(deepfool(linear(w64, b64), x, overshoot=0.0).per_sample / expected - 1)
    assert float32_error.max() > 1e-12
    assert pgd_accuracy(copy64, x, f.argmax(1), 0.0) == 1.0


def test_cast_model_refuses_float64_where_keras_computes_float32():
    model = linear(np.ones((2, 2)), np.zeros(2))
    assert str(cast_model(model, "float32").weights[0].dtype) == "float32"
    if keras_computes_float64():
        pytest.skip("TensorFlow computes float64")
    with pytest.raises(ValueError, match="float64 needs the TensorFlow backend") as info:
        cast_model(model)
    assert f"on the {keras.backend.backend()} backend" in str(info.value)
