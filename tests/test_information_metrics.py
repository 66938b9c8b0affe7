"""keras_lpc.callbacks.information_metrics: `InformationMetrics` logs the functions' values."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc.metrics import information_metrics


def _model():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="silu"),
            keras_lpc.LatentPointCollapse(3),
            keras.layers.Dense(2),
        ]
    )


def test_callback_logs_the_functions_values(rng):
    x = rng.normal(size=(200, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = _model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = keras_lpc.InformationMetrics((x, y), every=2, max_samples=150, prefix="t_")
    history = model.fit(x, y, epochs=2, batch_size=50, verbose=0, callbacks=[cb])
    assert len(history.history["t_entropy"]) == 2  # logged every epoch
    assert cb.computed_epochs == [0, 1]  # the first and the last epoch
    xs, ys = cb.arrays()
    assert len(xs) == 150
    z, _ = cb.latents(xs)
    expected = information_metrics(z, ys, k=3, standardize=True)
    for name, value in expected.items():
        assert history.history["t_" + name][-1] == pytest.approx(value, rel=1e-6, abs=1e-9)
    assert copy.deepcopy(cb).k == 3


def test_callback_bad_arguments():
    x, y = np.zeros((4, 4)), np.zeros(4)
    with pytest.raises(ValueError, match=r"Received: method='x'"):
        keras_lpc.InformationMetrics((x, y), method="x")
    with pytest.raises(ValueError, match=r"`k` must be an integer >= 1. Received: k=0"):
        keras_lpc.InformationMetrics((x, y), k=0)
