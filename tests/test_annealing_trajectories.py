"""The redesigned GammaAnnealing reproduces the trajectories recorded before the redesign.

tests/data/annealing_trajectories.json holds, for five configurations, the
per-step gamma and the per-epoch logs that the earlier implementation
(commit deaa82b, which computed gamma from a per-layer count) produced for
scripted training accuracies. Here a real ``fit`` on every backend, whose
training accuracy is replaced by the same script, must give the same gamma
at every step (read from the layer) and the same logs.
"""

from __future__ import annotations

import json
import pathlib

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc import schedules as S
from keras_lpc.annealing import Hold, TrainingPace

RECORDED = json.loads(
    (pathlib.Path(__file__).parent / "data" / "annealing_trajectories.json").read_text()
)
ACC, STEPS = RECORDED["accuracies"], RECORDED["steps"]

# The recorded configurations, in today's arguments.
CONFIGS = {
    "default": {},
    "default_max50": {"max_gamma": 50.0},
    "default_epoch": {"unit": "epoch"},
    "explicit_paced_stretched": {
        "schedule": S.Linear(0.0, 100.0, 40),
        "ramp_fraction": 0.5,
        "policy": [Hold(), TrainingPace()],
    },
    "explicit_hold": {"schedule": S.Linear(0.0, 100.0, 1000), "policy": Hold(fraction=0.9)},
}


class _Script(keras.callbacks.Callback):
    """Writes the scripted training accuracy into the epoch's logs (listed first)."""

    def on_epoch_end(self, epoch, logs=None):
        logs["accuracy"] = ACC[epoch]


class _Gammas(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.values = []

    def on_train_batch_end(self, batch, logs=None):
        layer = self.model.get_layer("lpc")
        self.values.append(float(keras.ops.convert_to_numpy(layer.gamma)))


def _model():
    model = keras.Sequential(
        [keras.Input((4,)), keras_lpc.LatentPointCollapse(2, name="lpc"), keras.layers.Dense(3)]
    )
    model.compile(
        keras.optimizers.SGD(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_recorded_trajectory_is_reproduced(name):
    expected = RECORDED["scenarios"][name]
    x = np.random.default_rng(0).normal(size=(4 * STEPS, 4)).astype("float32")
    y = np.arange(4 * STEPS) % 3
    seen = _Gammas()
    history = _model().fit(
        x,
        y,
        batch_size=4,
        epochs=len(ACC),
        shuffle=False,
        verbose=0,
        callbacks=[_Script(), keras_lpc.GammaAnnealing(**CONFIGS[name]), seen],
    )
    np.testing.assert_allclose(seen.values, expected["gamma"], rtol=2e-6, atol=1e-6)
    for key in ("gamma", "gamma_count", "gamma_holding"):
        want = [logs[key] for logs in expected["logs"]]
        np.testing.assert_allclose(history.history[key], want, rtol=2e-6, atol=1e-6, err_msg=key)
