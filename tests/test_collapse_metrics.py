"""keras_lpc.callbacks.collapse_metrics: `CollapseMetrics` logs the pure functions' values
where History, KerasTuner and TensorBoard read them."""

from __future__ import annotations

import copy
import csv

import keras
import numpy as np
import pytest
from _callback_models import lpc_model, small_data

import keras_lpc
from keras_lpc import metrics as M
from keras_lpc.metrics import collapse_metrics


def _np(t):
    return keras.ops.convert_to_numpy(t)


def test_callback_logs_pure_function_values(rng):
    x = rng.normal(size=(96, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0).astype("int32")
    lpc = keras_lpc.LatentPointCollapse(3, name="lpc")
    model = keras.Sequential([keras.Input((5,)), lpc, keras.layers.Dense(4)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = keras_lpc.CollapseMetrics((x, y), labels="true", every=2)
    cb = copy.deepcopy(cb)  # KerasTuner copies callbacks
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[cb])
    assert len(history.history["val_nc1"]) == 2  # logged every epoch
    assert cb.computed_epochs == [0, 1]  # the first and the last epoch
    z = keras.ops.convert_to_numpy(lpc(x))
    expected = M.collapse_metrics(z, y)
    for name, value in expected.items():
        assert history.history["val_" + name][-1] == pytest.approx(value, rel=1e-4, abs=1e-6)


def test_keras_tuner_objective(rng, tmp_path):
    kt = pytest.importorskip("keras_tuner")
    x = rng.normal(size=(64, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def build(hp):
        model = keras.Sequential(
            [
                keras.Input((5,)),
                keras_lpc.LatentPointCollapse(hp.Int("d", 2, 3)),
                keras.layers.Dense(2),
            ]
        )
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    tuner = kt.RandomSearch(
        build,
        objective=kt.Objective("val_separation_ratio", "max"),
        max_trials=1,
        directory=str(tmp_path / "tuner"),
    )
    log = tmp_path / "log.csv"  # KerasTuner deep-copies callbacks: their files stay
    tuner.search(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[
            keras_lpc.CollapseMetrics((x, y), labels="true"),
            keras.callbacks.CSVLogger(str(log)),
        ],
    )
    trial = tuner.oracle.get_best_trials(1)[0]
    with open(log) as f:
        logged = [float(row["val_separation_ratio"]) for row in csv.DictReader(f)]
    assert len(logged) == 2 and np.all(np.isfinite(logged))
    # the score is the value the callback logged at the objective's best epoch
    best = int(np.argmax(logged))
    assert trial.score == pytest.approx(logged[best], rel=1e-6)
    assert trial.metrics.get_best_step("val_separation_ratio") == best
    # ... and the function's value on the model KerasTuner saved at that epoch
    model = tuner.get_best_models(1)[0]
    expected = collapse_metrics(keras_lpc.latents(model, x), y)["separation_ratio"]
    assert trial.score == pytest.approx(expected, rel=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="`every` must be an integer >= 1"):
        keras_lpc.CollapseMetrics((np.zeros((4, 2)), np.zeros(4)), every=0)
    with pytest.raises(ValueError, match="len\\(x\\)=4 and len\\(y\\)=3"):
        keras_lpc.CollapseMetrics((np.zeros((4, 2)), np.zeros(3)))
    with pytest.raises(ValueError, match="`labels` must be one of"):
        keras_lpc.CollapseMetrics((np.zeros((4, 2)), np.zeros(4)), labels="both")


def test_tensorboard_histograms_with_the_lpc_layer(tmp_path):
    """TensorBoard's event files hold the LPC layer's weights and CollapseMetrics' values."""
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from tensorboard.util import tensor_util

    x, y = small_data(32)
    model = lpc_model()
    lpc = model.get_layer("lpc")
    lpc.gamma.assign(0.25)  # no annealer: gamma stays 0.25
    board = keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1)
    history = model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        validation_data=(x, y),
        callbacks=[board, keras_lpc.CollapseMetrics((x, y))],
    )

    def read(run):
        events = ea.EventAccumulator(str(tmp_path / run), size_guidance={ea.TENSORS: 0})
        events.Reload()
        return {
            tag: tensor_util.make_ndarray(events.Tensors(tag)[-1].tensor_proto)
            for tag in events.Tags()["tensors"]
        }

    train, validation = read("train"), read("validation")
    # every key of CollapseMetrics reaches the validation run ("val_" stripped), as logged
    for name in keras_lpc.CollapseMetrics((x, y)).metric_names:
        assert float(validation["epoch_" + name]) == pytest.approx(
            history.history["val_" + name][0], rel=1e-6
        ), name
    # a histogram of every variable of the LPC layer, as it is after the epoch: rows of
    # (left edge, right edge, count) that count every element and span its values
    assert len(lpc.weights) == 9  # gamma, six annealing numbers, the projection's two
    for variable in lpc.weights:
        histogram = train[variable.path + "/histogram"]
        values = _np(variable)
        assert histogram[:, 2].sum() == values.size, variable.path
        assert histogram[:, 0].min() == pytest.approx(values.min(), rel=1e-6), variable.path
        assert histogram[:, 1].max() == pytest.approx(values.max(), rel=1e-6), variable.path
    assert train["lpc/gamma/histogram"][:, :2].max() == pytest.approx(0.25)
