"""Non-finite values: diverging training, and the penalty's float16/bfloat16 edges.

A training run whose weights turn NaN must not crash the metric callbacks:
they log NaN and warn once each, and `keras.callbacks.TerminateOnNaN`
still stops the run. The penalty ``gamma * mean(z ** 2)`` is computed in
float32, so from finite float16 latents it is finite for any gamma up to
``3.4e38 / 65504 ** 2 = 7.9e28`` (1e6 is the schedules' maximum). bfloat16
latents have float32's exponent range: the penalty is finite for
``|z| < sqrt(3.4e38 / max(gamma, n))`` with ``n`` the number of averaged
elements (the mean sums before it divides), 1.84e16 at gamma 1e6, and
overflows to inf (never NaN) beyond; measured the same on all three backends.
Past ``sqrt(3.4e38 / gamma)`` no float32 can hold the value.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import keras_lpc

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _model():
    init = keras.initializers.GlorotUniform
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="silu", kernel_initializer=init(1)),
            keras_lpc.LatentPointCollapse(3, gamma=1.0, kernel_initializer=init(2), name="lpc"),
            keras.layers.Dense(3, kernel_initializer=init(3)),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _data(inf_row=None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, size=16)
    if inf_row is not None:
        x[inf_row, 0] = np.inf  # the step on that batch turns every weight NaN
    return x, y


def _metric_callbacks(x_val, y_val):
    return [
        keras_lpc.CollapseMetrics((x_val, y_val)),
        keras_lpc.RobustnessMetrics((x_val, y_val), every=1, pgd_eps=[0.1]),
        keras_lpc.InformationMetrics((x_val, y_val), every=1),
    ]


def _nan_warnings(record):
    return sorted(
        str(w.message).split(":")[0]
        for w in record
        if issubclass(w.category, RuntimeWarning) and "logging NaN" in str(w.message)
    )


def test_metric_callbacks_log_nan_and_warn_once_each_when_training_diverges():
    x, y = _data(inf_row=0)
    x_val, y_val = _data()
    model = _model()
    metric_callbacks = _metric_callbacks(x_val, y_val)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = model.fit(
            x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=metric_callbacks
        )
    logs = history.history
    assert len(logs["loss"]) == 3 and np.isnan(logs["loss"]).all()
    assert np.isnan(_np(model.get_layer("lpc").projection.kernel)).all()
    names = [cb.prefix + name for cb in metric_callbacks for name in cb.metric_names]
    assert {"val_nc1", "val_deepfool", "val_pgd_accuracy_0.1", "val_entropy"} <= set(names)
    for name in names:
        assert len(logs[name]) == 3 and np.isnan(logs[name]).all(), name
    assert _nan_warnings(record) == ["CollapseMetrics", "InformationMetrics", "RobustnessMetrics"]


def test_terminate_on_nan_still_stops_the_run_with_annealing_and_metric_callbacks():
    x, y = _data(inf_row=8)  # second batch of the first epoch
    x_val, y_val = _data()
    model = _model()
    annealing = keras_lpc.GammaAnnealing(
        keras_lpc.schedules.Constant(2.0), unit="epoch", hold_monitor="accuracy"
    )
    callbacks = [annealing, *_metric_callbacks(x_val, y_val), keras.callbacks.TerminateOnNaN()]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = model.fit(
            x, y, batch_size=8, epochs=5, shuffle=False, verbose=0, callbacks=callbacks
        )
    assert model.stop_training
    logs = history.history
    assert len(logs["loss"]) == 1 and np.isnan(logs["loss"][0])
    assert logs["gamma"] == [2.0]
    assert np.isnan(logs["val_nc1"][0]) and np.isnan(logs["val_entropy"][0])
    assert len(_nan_warnings(record)) == 3


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
