"""keras_lpc.callbacks._base: what every metric callback shares: the constructor forms,
deep copies, mixed precision, and NaN logged (one warning each) when training diverges."""

from __future__ import annotations

import copy
import warnings

import keras
import numpy as np
import pytest
from _callback_models import lpc_model, small_data

import keras_lpc
from keras_lpc.callbacks import LatentMetricCallback, ModelMetricCallback
from keras_lpc.metrics import collapse_metrics


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_every_metric_callback_under_mixed_precision(policy, restore_policy):
    keras.config.set_dtype_policy(policy)
    x, y = small_data(32)
    model = lpc_model()
    callbacks = [
        keras_lpc.CollapseMetrics((x, y), labels="true"),
        keras_lpc.RobustnessMetrics((x, y), pgd_eps=[0.1]),
        keras_lpc.InformationMetrics((x, y), every=1),
    ]
    history = model.fit(x, y, epochs=1, verbose=0, callbacks=callbacks)
    names = [cb.prefix + n for cb in callbacks for n in cb.metric_names]
    values = [history.history[n][0] for n in names]
    assert np.all(np.isfinite(values)), dict(zip(names, values))
    z = keras_lpc.latents(model, x)
    assert z.dtype == np.float32 and z.shape == (32, 2)
    assert history.history["val_nc1"][0] == pytest.approx(collapse_metrics(z, y)["nc1"], rel=1e-4)


def test_bases_and_constructor_forms():
    x, y = small_data(8)
    for cls in (keras_lpc.CollapseMetrics, keras_lpc.InformationMetrics):
        cb = cls((x, y), every=2, max_samples=5, seed=3, prefix="t_")
        assert isinstance(cb, LatentMetricCallback)
        assert (cb.every, cb.max_samples, cb.seed, cb.prefix) == (2, 5, 3, "t_")
        assert len(cb.arrays()[0]) == 5
    cb = keras_lpc.RobustnessMetrics((x, y), every=2, max_samples=5, seed=3, prefix="t_")
    assert isinstance(cb, ModelMetricCallback) and not hasattr(cb, "layer")
    with pytest.warns(DeprecationWarning, match="passing every, max_samples by position"):
        old = keras_lpc.CollapseMetrics((x, y), 2, 6)
    assert (old.every, old.max_samples) == (2, 6)
    with pytest.warns(DeprecationWarning, match="`layer` is deprecated"):
        keras_lpc.RobustnessMetrics((x, y), layer="lpc")
    with pytest.raises(TypeError, match="at most 7 more positional arguments"):
        keras_lpc.CollapseMetrics((x, y), *range(8))
    with pytest.raises(
        TypeError,
        match=r"got `every` both by position and by keyword\. "
        r"Received: every=2 and every=3",
    ):
        keras_lpc.CollapseMetrics((x, y), 2, every=3)
    with pytest.warns(DeprecationWarning, match="passing every, max_samples, prefix by position"):
        info = keras_lpc.InformationMetrics((x, y), 4, 7, "i_", k=2)
    assert (info.every, info.max_samples, info.prefix, info.k) == (4, 7, "i_", 2)
    with pytest.warns(DeprecationWarning, match="passing every by position"):
        rob = keras_lpc.RobustnessMetrics(data=(x, y)), keras_lpc.RobustnessMetrics((x, y), 5)
    assert rob[1].every == 5 and rob[0].every == 10


def test_deepcopy_shares_the_data():
    x, y = small_data(8)
    cb = keras_lpc.CollapseMetrics((x, y))
    twin = copy.deepcopy(cb)
    assert twin.data is cb.data and twin.computed_epochs == []


# -- non-finite values: a diverging run -------------------------------------------------
# A training run whose weights turn NaN must not crash the metric callbacks: they log
# NaN and warn once each, and `keras.callbacks.TerminateOnNaN` still stops the run.


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _diverging_model():
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


def _diverging_data(inf_row=None):
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
    x, y = _diverging_data(inf_row=0)
    x_val, y_val = _diverging_data()
    model = _diverging_model()
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
    x, y = _diverging_data(inf_row=8)  # second batch of the first epoch
    x_val, y_val = _diverging_data()
    model = _diverging_model()
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
