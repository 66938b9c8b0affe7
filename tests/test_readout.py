"""`keras_lpc.readout`: a model's latents and outputs, for every kind of model."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from _callback_models import small_data

import keras_lpc
from keras_lpc import layers as layers_module


def _model():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="tanh"),
            keras_lpc.LatentPointCollapse(2, name="lpc"),
            keras.layers.Dense(2),
        ]
    )


class _Subclassed(keras.Model):
    def __init__(self, fail=False):
        super().__init__()
        self.hidden = keras.layers.Dense(6)
        self.lpc = keras_lpc.LatentPointCollapse(2, name="lpc")
        self.head = keras.layers.Dense(2)
        self.fail = fail

    def call(self, x):
        z = self.lpc(self.hidden(x))
        if self.fail:
            raise RuntimeError("boom after the LPC layer")
        return self.head(z)


def _expected(lpc, h):
    kernel = keras.ops.convert_to_numpy(lpc.projection.kernel)
    bias = keras.ops.convert_to_numpy(lpc.projection.bias)
    return h @ kernel + bias


def test_latents_of_every_model_kind():
    x, _ = small_data(10)
    inputs = keras.Input((4,))
    lpc = keras_lpc.LatentPointCollapse(2, name="lpc")
    functional = keras.Model(inputs, keras.layers.Dense(3)(lpc(inputs)))
    inner = keras.Sequential([keras.Input((4,)), keras_lpc.LatentPointCollapse(2, name="in")])
    nested = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(3)])
    sequential = keras.Sequential([keras.Input((4,)), keras_lpc.LatentPointCollapse(2)])
    sub = _Subclassed()
    sub(x[:1])
    cases = [
        (functional, lpc, x),
        (nested, inner.layers[0], x),
        (sequential, sequential.layers[0], x),
        (sub, sub.lpc, keras.ops.convert_to_numpy(sub.hidden(x))),
    ]
    for model, layer, h in cases:
        z = keras_lpc.latents(model, x, batch_size=3)
        assert z.dtype == np.float32
        np.testing.assert_allclose(z, _expected(layer, h), rtol=1e-5, atol=1e-6)
    two = keras.Sequential(
        [
            keras.Input((4,)),
            keras_lpc.LatentPointCollapse(3, name="a"),
            keras_lpc.LatentPointCollapse(2, name="b"),
        ]
    )
    np.testing.assert_allclose(
        keras_lpc.latents(two, x, layer="b"), keras.ops.convert_to_numpy(two(x)), rtol=1e-6
    )


def test_latents_leave_no_recorder_behind():
    x, _ = small_data(4)
    model = _Subclassed(fail=True)
    with pytest.raises(RuntimeError, match="boom"):
        keras_lpc.latents(model, x)
    assert len(layers_module._RECORDERS) == 0
    keras_lpc.latents(_model(), x)
    assert len(layers_module._RECORDERS) == 0
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1"):
        keras_lpc.latents(_model(), x, batch_size=0)


def test_latents_and_outputs_come_from_one_pass_in_any_batch_size():
    x, _ = small_data(10)
    model = _model()
    for batch_size in (1, 3, 10, 64):
        z, out = keras_lpc.latents_and_outputs(model, x, batch_size=batch_size)
        np.testing.assert_allclose(z, keras_lpc.latents(model, x), rtol=1e-6)
        np.testing.assert_allclose(out, keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(keras_lpc.readout.outputs(model, x, batch_size), out, rtol=1e-6)
    with pytest.raises(ValueError, match="`x` must be a non-empty batch of inputs"):
        keras_lpc.latents_and_outputs(model, np.zeros((0, 4), "float32"))


def test_half_precision_latents_come_back_as_float32():
    keras.config.set_dtype_policy("mixed_bfloat16")
    x, _ = small_data(6)
    z, out = keras_lpc.latents_and_outputs(_model(), x, batch_size=4)
    assert z.dtype == out.dtype == np.float32 and z.shape == (6, 2)
