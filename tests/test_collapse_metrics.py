"""keras_lpc.callbacks.collapse_metrics: `CollapseMetrics` logs the pure functions' values
where History, KerasTuner and TensorBoard read them."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc import metrics as M


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def _model(name="lpc", units=6):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(units, activation="tanh"),
            keras_lpc.LatentPointCollapse(2, name=name),
            keras.layers.Dense(2, dtype="float32"),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


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
        directory=str(tmp_path),
    )
    tuner.search(
        x, y, epochs=1, verbose=0, callbacks=[keras_lpc.CollapseMetrics((x, y), labels="true")]
    )
    score = tuner.oracle.get_best_trials(1)[0].score
    assert np.isfinite(score) and score > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="`every` must be an integer >= 1"):
        keras_lpc.CollapseMetrics((np.zeros((4, 2)), np.zeros(4)), every=0)
    with pytest.raises(ValueError, match="len\\(x\\)=4 and len\\(y\\)=3"):
        keras_lpc.CollapseMetrics((np.zeros((4, 2)), np.zeros(3)))
    with pytest.raises(ValueError, match="`labels` must be one of"):
        keras_lpc.CollapseMetrics((np.zeros((4, 2)), np.zeros(4)), labels="both")


def test_tensorboard_histograms_with_the_lpc_layer(tmp_path):
    x, y = _data(32)
    model = _model()
    board = keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1)
    history = model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        validation_data=(x, y),
        callbacks=[board, keras_lpc.CollapseMetrics((x, y))],
    )
    assert "val_nc1" in history.history
    assert list((tmp_path / "train").iterdir()) and list((tmp_path / "validation").iterdir())
