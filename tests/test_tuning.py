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
    assert 0.3 <= choice.ramp_fraction <= 0.6
    layer = choice.layer(name="z")
    assert isinstance(layer, keras_lpc.LatentPointCollapse) and layer.dim == choice.dim
    cb = choice.callback()
    # the quadratic ramp to the tuned maximum on the clock: no policy can hold it lower
    assert isinstance(cb, keras_lpc.GammaAnnealing) and cb.policies == []
    assert cb.schedule == choice.schedule() and cb.schedule.stop == choice.max_gamma
    assert cb.ramp_fraction == choice.ramp_fraction and cb.unit == "step"
    ramp = choice.schedule()
    assert isinstance(ramp, keras_lpc.schedules.Polynomial)
    span = ramp.span
    # quadratic from 0: gamma(n) = max * (n / span) ** 2
    assert ramp(0) == 0.0
    assert ramp(span / 2) == pytest.approx(choice.max_gamma / 4)
    assert ramp(span) == pytest.approx(choice.max_gamma)
    assert ramp(2 * span) == pytest.approx(choice.max_gamma)


def test_default_ramp_fraction_is_0_95_and_start_gamma_is_deprecated():
    hp = keras_tuner.HyperParameters()
    choice = tuning.gamma_hyperparameters(hp, max_gamma=(50.0, 50.0), dims=(4,))
    assert choice.ramp_fraction == "auto"
    assert choice.callback().ramp_fraction == 0.95
    assert hp.values["lpc_max_gamma"] == 50.0
    with pytest.warns(FutureWarning, match="`start_gamma` is deprecated and ignored"):
        old = tuning.gamma_hyperparameters(
            keras_tuner.HyperParameters(), max_gamma=(50.0, 50.0), dims=(4,), start_gamma=1e-2
        )
    assert old == choice


def test_tuned_callback_follows_the_quadratic_ramp_in_fit():
    """10 steps on the clock, ramp over 95 % (9.5, past the last step 9): max * (n / 9) ** 2."""
    hp = keras_tuner.HyperParameters()
    choice = tuning.gamma_hyperparameters(hp, max_gamma=(40.0, 40.0), dims=(2,), ramp_fraction=0.95)
    model = keras.Sequential([keras.Input((3,)), choice.layer(), keras.layers.Dense(2)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    seen = []

    class Record(keras.callbacks.Callback):
        # the train step computes gamma in the graph: after step n the variable
        # holds the gamma step n used
        def on_train_batch_end(self, batch, logs=None):
            layer = next(la for la in self.model.layers if hasattr(la, "gamma"))
            seen.append(float(keras.ops.convert_to_numpy(layer.gamma)))

    x = np.zeros((20, 3), "float32")
    y = np.zeros(20, "int32")
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        verbose=0,
        callbacks=[choice.callback(), Record()],
    )
    expected = [min(40.0, 40.0 * (n / 9) ** 2) for n in range(10)]
    np.testing.assert_allclose(seen, expected, rtol=1e-5)


# The default ramp fraction (0.95): a 1-epoch Hyperband trial (4 steps) ends it at its last step.
SPACE = {"max_gamma": (1.0, 50.0), "dims": (4,)}


def _build(hp):
    choice = tuning.gamma_hyperparameters(hp, **SPACE)
    model = keras.Sequential([keras.Input((6,)), choice.layer(), keras.layers.Dense(3)])
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


class _Hypermodel(keras_tuner.HyperModel):
    def build(self, hp):
        return _build(hp)

    def fit(self, hp, model, *args, **kwargs):
        choice = tuning.gamma_hyperparameters(hp, **SPACE)
        callbacks = list(kwargs.pop("callbacks", [])) + [choice.callback()]
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
        # the ramp ends by each trial's last step: every trial trains at its maximum, the
        # Hyperband continuations (initial_epoch > 0, the earlier trial's weights) too
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
