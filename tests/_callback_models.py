"""The small data and LPC model that the metric-callback tests share."""

from __future__ import annotations

import keras
import numpy as np

import keras_lpc


def small_data(n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard-normal inputs with 4 features, labelled by the sign of the first."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def lpc_model(name: str = "lpc", units: int = 6) -> keras.Model:
    """4 -> Dense(units, tanh) -> LatentPointCollapse(2, name) -> Dense(2), compiled."""
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


class Seen(keras.callbacks.Callback):
    """Records the keys every epoch's logs hold when this callback runs."""

    def __init__(self):
        super().__init__()
        self.keys = []

    def on_epoch_end(self, epoch, logs=None):
        self.keys.append(set(logs))
