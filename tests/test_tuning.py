"""Tuning gamma with KerasTuner: declared hyperparameters, deep-copied callbacks, paced trials."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc import tuning

keras_tuner = pytest.importorskip("keras_tuner")


def test_declares_the_hyperparameters_and_builds_layer_and_callback():
    hp = keras_tuner.HyperParameters()
    choice = tuning.gamma_hyperparameters(
        hp, max_gamma=(1.0, 100.0), dims=(4, 8), ramp_fraction=(0.3, 0.6)
    )
    assert set(hp.values) == {"lpc_max_gamma", "lpc_dim", "lpc_unit", "lpc_ramp_fraction"}
    assert 1.0 <= choice.max_gamma <= 100.0 and choice.dim in (4, 8)
    layer = choice.layer(name="z")
    assert isinstance(layer, keras_lpc.LatentPointCollapse) and layer.dim == choice.dim
    cb = choice.callback(hold_monitor=None)
    assert cb.ramp_fraction == choice.ramp_fraction
    assert cb.schedule(cb.schedule.span) == pytest.approx(choice.max_gamma)
    assert cb.schedule(0) == pytest.approx(1e-2)


def _build(hp):
    choice = tuning.gamma_hyperparameters(hp, max_gamma=(1.0, 50.0), dims=(4,))
    model = keras.Sequential([keras.Input((6,)), choice.layer(), keras.layers.Dense(3)])
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


class _Hypermodel(keras_tuner.HyperModel):
    def build(self, hp):
        return _build(hp)

    def fit(self, hp, model, *args, **kwargs):
        choice = tuning.gamma_hyperparameters(hp, max_gamma=(1.0, 50.0), dims=(4,))
        callbacks = list(kwargs.pop("callbacks", [])) + [choice.callback(hold_monitor=None)]
        return model.fit(*args, callbacks=callbacks, **kwargs)


@pytest.mark.parametrize("tuner_name", ["RandomSearch", "Hyperband"])
def test_every_trial_reaches_its_maximum_gamma(tuner_name, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.integers(0, 3, 64)
    common = dict(
        objective=keras_tuner.Objective("gamma", "max"), directory=tmp_path, overwrite=True, seed=1
    )
    if tuner_name == "RandomSearch":
        tuner = keras_tuner.RandomSearch(_Hypermodel(), max_trials=2, **common)
        kwargs = {"epochs": 2}
    else:
        tuner = keras_tuner.Hyperband(
            _Hypermodel(), max_epochs=3, factor=3, hyperband_iterations=1, **common
        )
        kwargs = {}
    # a callback passed to search is deep-copied per trial by KerasTuner
    tuner.search(
        x, y, batch_size=16, verbose=0, callbacks=[keras.callbacks.TerminateOnNaN()], **kwargs
    )
    trials = tuner.oracle.get_best_trials(num_trials=10)
    assert trials
    for trial in trials:
        # the paced ramp ends at half the run, so gamma ends at the trial's maximum
        assert trial.score == pytest.approx(trial.hyperparameters.get("lpc_max_gamma"), rel=1e-5)


def test_combined_objective_logs_the_weighted_sum():
    cb = tuning.CombinedObjective(weight=3.0)
    logs = {"val_accuracy": 0.5, "val_deepfool": 0.1}
    cb.on_epoch_end(0, logs)
    assert logs["val_accuracy_robustness"] == pytest.approx(0.8)
    only_acc = {"val_accuracy": 0.5}
    cb.on_epoch_end(1, only_acc)
    assert "val_accuracy_robustness" not in only_acc
    assert cb.objective().name == "val_accuracy_robustness"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"max_gamma": 5.0},
            TypeError,
            r"`max_gamma` must be a pair \(low, high\). Received: max_gamma=5.0",
        ),
        ({"max_gamma": (10.0, 1.0)}, ValueError, r"low <= high. Received: max_gamma=\(10.0, 1.0\)"),
        ({"max_gamma": (-1.0, 1.0)}, ValueError, r"`max_gamma` must be a positive number"),
        (
            {"start_gamma": 5.0, "max_gamma": (1.0, 2.0)},
            ValueError,
            r"`start_gamma` must be <= max_gamma\[0\]",
        ),
        ({"dims": ()}, ValueError, r"`dims` must list at least one dimension"),
        ({"dims": (0,)}, ValueError, r"`dims` must be an integer >= 1. Received: dims=0"),
        ({"units": ("batch",)}, ValueError, r"`units` must contain 'step' or 'epoch'"),
        (
            {"ramp_fraction": 1.5},
            ValueError,
            r"`ramp_fraction` must be in \(0, 1\]. Received: ramp_fraction=1.5",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tuning.gamma_hyperparameters(keras_tuner.HyperParameters(), **kwargs)
