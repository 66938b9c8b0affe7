"""LatentPointCollapse: the penalty's value, gamma as a variable, saving, precision, errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc import LatentPointCollapse


def _np(t):
    return keras.ops.convert_to_numpy(t)


@pytest.mark.parametrize("shape", [(5, 7), (3, 4, 4, 6)])
def test_penalty_equals_gamma_mean_square_of_output(shape, rng):
    layer = LatentPointCollapse(dim=3, gamma=0.37)
    x = rng.normal(size=shape).astype("float32")
    z = _np(layer(x))
    assert z.shape == shape[:-1] + (3,)
    expected = 0.37 * np.mean(z.astype(np.float64) ** 2)
    (loss,) = layer.losses
    np.testing.assert_allclose(float(_np(loss)), expected, rtol=1e-5)


def test_dim_none_penalises_input_unchanged(rng):
    layer = LatentPointCollapse(gamma=2.0)
    x = rng.normal(size=(4, 5)).astype("float32")
    z = _np(layer(x))
    np.testing.assert_array_equal(z, x)
    np.testing.assert_allclose(float(_np(layer.losses[0])), 2.0 * np.mean(x**2), rtol=1e-6)
    assert len(layer.trainable_weights) == 0


def test_penalty_matches_activity_regularizer_with_gamma_over_d(rng):
    # REFERENCE.md: Keras' L2(l) activity penalty is l * sum(z^2) / batch, so l = gamma / d.
    x = rng.normal(size=(8, 3)).astype("float32")
    gamma, d = 0.8, 3
    ours = float(_np(keras_lpc.latent_penalty(x, gamma)))
    keras_form = (gamma / d) * np.sum(x.astype(np.float64) ** 2) / len(x)
    np.testing.assert_allclose(ours, keras_form, rtol=1e-6)


def test_gamma_is_a_non_trainable_float32_variable():
    layer = LatentPointCollapse(dim=2, gamma=1.5)
    assert isinstance(layer.gamma, keras.Variable)
    assert layer.gamma.dtype == "float32"
    assert not layer.gamma.trainable
    layer.gamma.assign(1e6)
    assert float(_np(layer.gamma)) == 1e6
    assert layer.compute_output_shape((None, 9)) == (None, 2)


def _model(gamma=0.0, dim=4, classes=3, features=6):
    return keras.Sequential(
        [
            keras.Input((features,)),
            LatentPointCollapse(dim=dim, gamma=gamma, name="lpc"),
            keras.layers.Dense(classes, name="head"),
        ]
    )


def _ce(logits, y):
    logits = logits.astype(np.float64)
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return -np.mean(logp[np.arange(len(y)), y])


class _BatchLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.running = []

    def on_train_batch_end(self, batch, logs=None):
        self.running.append(float(logs["loss"]))


@pytest.mark.parametrize("unit_epochs", [1, 2])
def test_gamma_change_reaches_the_compiled_train_step_mid_epoch(unit_epochs, rng):
    """With lr=0 the weights stay fixed: each batch's loss is CE + gamma_b * mean(z^2)."""
    block = rng.normal(size=(8, 6)).astype("float32")
    yb = rng.integers(0, 3, size=8)
    steps = 4
    x = np.concatenate([block] * steps)
    y = np.concatenate([yb] * steps)
    model = _model()
    model.compile(
        keras.optimizers.SGD(learning_rate=0.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    schedule = keras_lpc.schedules.Exponential(1.0, 2.0, every=1, maximum=1e3)
    record = _BatchLosses()
    cb = keras_lpc.GammaAnnealing(schedule, unit="step", pace=False, hold_monitor=None)
    model.fit(
        x, y, batch_size=8, epochs=unit_epochs, shuffle=False, verbose=0, callbacks=[cb, record]
    )

    lpc = model.get_layer("lpc")
    z = _np(lpc.projection(block)).astype(np.float64)
    logits = _np(model(block))
    ce, p = _ce(logits, yb), np.mean(z**2)
    # Keras logs the running (batch-size weighted) mean of the loss over the epoch.
    running = np.array(record.running).reshape(unit_epochs, steps)
    n = np.arange(1, steps + 1)
    per_batch = running * n - np.concatenate(
        [np.zeros((unit_epochs, 1)), running[:, :-1] * n[:-1]], axis=1
    )
    gammas = 2.0 ** np.arange(unit_epochs * steps).reshape(unit_epochs, steps)
    np.testing.assert_allclose(per_batch, ce + gammas * p, rtol=2e-4)


def test_plain_callback_assignment_through_self_model_is_seen(rng):
    class SetGamma(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.model.get_layer("lpc").gamma.assign(10.0 * batch)

    x = np.concatenate([rng.normal(size=(4, 6)).astype("float32")] * 3)
    y = np.zeros(12, dtype="int64")
    model = _model()
    model.compile(
        keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    rec = _BatchLosses()
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[SetGamma(), rec])
    z = _np(model.get_layer("lpc")(x[:4])).astype(np.float64)
    ce = _ce(_np(model(x[:4])), y[:4])
    expected_running = np.cumsum(ce + 10.0 * np.arange(3) * np.mean(z**2)) / np.arange(1, 4)
    np.testing.assert_allclose(rec.running, expected_running, rtol=2e-4)


def test_save_and_load_safe_mode_keeps_predictions_and_gamma(tmp_path, rng):
    model = _model(gamma=0.25)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.get_layer("lpc").gamma.assign(123.5)
    x = rng.normal(size=(5, 6)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    lpc = loaded.get_layer("lpc")
    assert isinstance(lpc, LatentPointCollapse)
    assert float(_np(lpc.gamma)) == 123.5
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), rtol=1e-6, atol=1e-6)


def test_config_round_trip_and_clone_model(rng):
    layer = LatentPointCollapse(
        dim=5,
        gamma=0.5,
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(0.01),
        name="bottleneck",
    )
    config = layer.get_config()
    assert config["dim"] == 5 and config["gamma"] == 0.5 and config["use_bias"] is False
    again = LatentPointCollapse.from_config(config)
    assert again.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, LatentPointCollapse) and restored.dim == 5

    model = _model(gamma=2.0)
    model.get_layer("lpc").gamma.assign(7.0)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    x = rng.normal(size=(3, 6)).astype("float32")
    np.testing.assert_allclose(_np(clone(x)), _np(model(x)), rtol=1e-6)
    assert float(_np(clone.get_layer("lpc").gamma)) == 7.0


def test_functional_subclassed_and_nested_models(rng):
    x = rng.normal(size=(4, 6)).astype("float32")
    inp = keras.Input((6,))
    functional = keras.Model(inp, keras.layers.Dense(2)(LatentPointCollapse(3, gamma=1.0)(inp)))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.lpc = LatentPointCollapse(3, gamma=1.0)
            self.head = keras.layers.Dense(2)

        def call(self, inputs):
            return self.head(self.lpc(inputs))

    nested = keras.Sequential([keras.Input((6,)), functional, keras.layers.Dense(2)])
    for model in (functional, Sub(), nested):
        model(x)
        assert len(model.losses) == 1
        (lpc,) = keras_lpc._models.find_lpc_layers(model)
        z = _np(lpc(x))
        np.testing.assert_allclose(
            float(_np(model.losses[0])), np.mean(z.astype(np.float64) ** 2), rtol=1e-5
        )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_penalty_is_float32_and_finite_at_gamma_1e6(policy, rng):
    keras.config.set_dtype_policy(policy)
    model = _model(gamma=1e6)
    lpc = model.get_layer("lpc")
    assert lpc.gamma.dtype == "float32"
    x = (100.0 * rng.normal(size=(16, 6))).astype("float32")
    y = rng.integers(0, 3, size=16)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model(x)
    (penalty,) = model.losses
    assert keras.backend.standardize_dtype(penalty.dtype) == "float32"
    z = _np(lpc(x)).astype(np.float64)
    np.testing.assert_allclose(float(_np(penalty)), 1e6 * np.mean(z**2), rtol=1e-3)
    loss = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dim": 0}, ValueError, r"`dim` must be an integer >= 1. Received: dim=0"),
        ({"dim": -3}, ValueError, r"Received: dim=-3"),
        ({"dim": 2.5}, TypeError, r"`dim` must be an integer >= 1. Received: dim=2.5"),
        ({"dim": "16"}, TypeError, r"Received: dim='16'"),
        ({"gamma": -1.0}, ValueError, r"`gamma` must be a number >= 0. Received: gamma=-1.0"),
        (
            {"gamma": float("nan")},
            ValueError,
            r"`gamma` must be a finite number. Received: gamma=nan",
        ),
        ({"gamma": "big"}, TypeError, r"`gamma` must be a real number. Received: gamma='big'"),
        ({"use_bias": "yes"}, TypeError, r"`use_bias` must be a bool. Received: use_bias='yes'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LatentPointCollapse(**kwargs)


def test_kernel_and_bias_are_the_projections():
    layer = LatentPointCollapse(dim=3)
    layer.build((None, 5))
    assert layer.kernel is layer.projection.kernel and tuple(layer.kernel.shape) == (5, 3)
    assert layer.bias is layer.projection.bias and tuple(layer.bias.shape) == (3,)
    no_bias = LatentPointCollapse(dim=3, use_bias=False)
    no_bias.build((None, 5))
    assert no_bias.bias is None and no_bias.kernel is no_bias.projection.kernel
    identity = LatentPointCollapse()
    assert identity.kernel is None and identity.bias is None


# -- the penalty's float16 / bfloat16 edges ------------------------------------------------
# The penalty gamma * mean(z ** 2) is computed in float32, so from finite float16 latents
# it is finite for any gamma up to 3.4e38 / 65504 ** 2 = 7.9e28 (1e6 is the schedules'
# maximum). bfloat16 latents have float32's exponent range: the penalty is finite for
# |z| < sqrt(3.4e38 / max(gamma, n)) with n the number of averaged elements (the mean
# sums before it divides), 1.84e16 at gamma 1e6, and overflows to inf (never NaN)
# beyond; measured the same on all three backends.


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _penalty_layer(policy, gamma):
    keras.config.set_dtype_policy(policy)
    layer = keras_lpc.LatentPointCollapse(gamma=gamma)  # penalises its input as it comes
    assert layer.compute_dtype == policy.split("_")[1]
    return layer


def _eager_penalty(layer, z):
    out = layer(z)
    assert keras.backend.standardize_dtype(out.dtype) == layer.compute_dtype
    (penalty,) = layer.losses
    assert keras.backend.standardize_dtype(penalty.dtype) == "float32"
    return float(_np(penalty))


def _compiled_penalty(layer, z):
    """The loss of ``evaluate`` on a model whose output is z with targets z: the penalty.

    One sample per batch: Keras' loss tracker sums ``loss * batch_size``,
    which would overflow first near float32's maximum.
    """
    model = keras.Sequential([keras.Input(z.shape[1:]), layer])
    model.compile(loss="mse")
    return float(model.evaluate(z, z, batch_size=1, verbose=0))


def test_float16_penalty_is_finite_at_float16_max_and_keeps_subnormals():
    layer = _penalty_layer("mixed_float16", 1e6)
    big = np.full((4, 3), np.finfo(np.float16).max, "float32")  # 65504
    expected = 1e6 * 65504.0**2  # 4.29e15, far below float32's maximum
    assert _eager_penalty(layer, big) == pytest.approx(expected, rel=1e-6)
    assert _compiled_penalty(layer, big) == pytest.approx(expected, rel=1e-6)
    # The smallest float16 subnormal 2**-24 squares to 0 in float16 but not in float32.
    tiny = np.full((4, 3), 2.0**-24, "float32")
    assert _eager_penalty(layer, tiny) == pytest.approx(1e6 * 2.0**-48, rel=1e-6)
    # Any gamma up to 3.4e38 / 65504**2 keeps float16 latents finite.
    layer.gamma.assign(7.9e28)
    assert np.isfinite(_eager_penalty(layer, big))


def _bfloat16_neighbours(value: float) -> tuple[float, float]:
    """The bfloat16 numbers just below and just above a positive ``value``."""
    bits = int(np.array(value, np.float32).view(np.uint32)) >> 16  # truncation: rounds down
    below = np.array(bits << 16, np.uint32).view(np.float32)
    above = np.array((bits + 1) << 16, np.uint32).view(np.float32)
    return float(below), float(above)


@pytest.mark.parametrize("gamma", [1.0, 1e6])
def test_bfloat16_penalty_is_finite_up_to_the_float32_overflow_edge(gamma):
    layer = _penalty_layer("mixed_bfloat16", gamma)
    n = 12  # elements averaged: one sample of 12 features
    edge = np.sqrt(FLOAT32_MAX / max(gamma, n))  # 5.3e18 at gamma 1, 1.84e16 at gamma 1e6
    below, above = _bfloat16_neighbours(edge)
    assert below < edge < above
    assert max(gamma, n) * below**2 / FLOAT32_MAX > 0.98  # within 2% of float32's maximum
    z = np.full((1, n), below, "float32")  # exactly representable in bfloat16
    assert _eager_penalty(layer, z) == pytest.approx(gamma * below**2, rel=1e-6)
    assert _compiled_penalty(layer, z) == pytest.approx(gamma * below**2, rel=1e-6)
    if gamma >= n:
        # One bfloat16 step further the true value exceeds float32's maximum: inf, not NaN.
        assert _eager_penalty(layer, np.full((1, n), above, "float32")) == np.inf
