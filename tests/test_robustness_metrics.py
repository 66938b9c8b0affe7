"""keras_lpc.callbacks.robustness_metrics: `RobustnessMetrics` for KerasTuner, and its
verified minimal perturbation on a model whose boundary is known."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
from _callback_models import lpc_model, small_data

import keras_lpc


def test_keras_tuner_objective_on_deepfool_with_default_every(tmp_path):
    kt = pytest.importorskip("keras_tuner")
    x, y = small_data(32)

    def build(hp):
        return lpc_model(units=hp.Int("units", 4, 6))

    tuner = kt.RandomSearch(
        build,
        objective=kt.Objective("val_deepfool", "max"),
        max_trials=1,
        directory=str(tmp_path),
        overwrite=True,
    )
    cb = keras_lpc.RobustnessMetrics((x, y), lipschitz=False)
    tuner.search(x, y, epochs=3, verbose=0, callbacks=[cb])
    trial = tuner.oracle.get_best_trials(1)[0]
    assert trial.score is not None and np.isfinite(trial.score) and trial.score > 0
    best = trial.metrics.get_history("val_deepfool")[-1]
    assert best.step in (0, 2) and best.value[0] == trial.score  # a computed epoch, not NaN


def test_attacks_argument_logs_the_verified_minimal_perturbation(monkeypatch):
    # f_0 - f_1 = 2 x_0: the boundary x_0 = 0 lies |x_0| away, ||r|| / ||x|| = |x_0| / ||x||
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    x = np.array([[3.0, 4.0], [-1.0, 1.0], [0.6, -0.8]], "float32")
    y = (x[:, 0] < 0).astype("int64")
    exact = np.mean(np.abs(x[:, 0]) / np.linalg.norm(x, axis=1))
    cb = keras_lpc.RobustnessMetrics((x, y), attacks=["deepfool", "boundary"], lipschitz=False)
    cb.set_model(model)
    from keras_lpc.robustness import _registry

    # the ensemble reuses the callback's run: its own DeepFool attack must not be called
    unused = dataclasses.replace(_registry._TABLE["deepfool"], fn=None)
    monkeypatch.setitem(_registry._TABLE, "deepfool", unused)
    values = cb.evaluate()
    assert values["min_perturbation"] == pytest.approx(exact, rel=0.03)
    assert values["min_perturbation"] >= exact * (1 - 1e-5)  # verified: never inside the boundary
    # DeepFool's overshoot 0.02 makes it 2 % too long here, and the ensemble no longer
    assert values["deepfool_overestimate"] == pytest.approx(1.0, abs=0.03)
    assert values["deepfool"] == pytest.approx(exact * 1.02, rel=1e-3)


def test_certify_logs_the_certified_side_of_the_bracket():
    # f_0 - f_1 = 2 x_0: every bound is exact on a linear model, rho_n = |x_0|,
    # relative |x_0| / ||x|| = 0.6, 0.7071, 0.6; all three are classified correctly
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    x = np.array([[3.0, 4.0], [-1.0, 1.0], [0.6, -0.8]], "float32")
    y = (x[:, 0] < 0).astype("int64")
    exact = np.abs(x[:, 0]) / np.linalg.norm(x, axis=1)
    for method in ("crown", "ibp", "lipschitz"):
        cb = keras_lpc.RobustnessMetrics(
            (x, y), certify=method, certify_eps=0.65, deepfool=False, lipschitz=False
        )
        cb.set_model(model)
        values = cb.evaluate()
        assert set(values) == {"certified_radius", "certified_accuracy"}
        assert values["certified_radius"] == pytest.approx(exact.mean(), rel=1e-3), method
        assert values["certified_accuracy"] == pytest.approx(1 / 3)  # only 0.7071 >= 0.65
    # a wrong label is never certified: every label flipped
    cb = keras_lpc.RobustnessMetrics(
        (x, 1 - y), certify="crown", certify_eps=0.01, deepfool=False, lipschitz=False
    )
    cb.set_model(model)
    assert cb.evaluate()["certified_accuracy"] == pytest.approx(0.0)
    # beside the verified ensemble: certified <= found, their median ratio close to 1
    cb = keras_lpc.RobustnessMetrics(
        (x, y), certify="crown", attacks=["deepfool", "boundary"], lipschitz=False
    )
    cb.set_model(model)
    values = cb.evaluate()
    assert values["certified_radius"] <= values["min_perturbation"]
    assert 0.97 <= values["bracket_ratio"] <= 1.0


def test_bracket_median_skips_inputs_without_a_finite_found_distance():
    from keras_lpc.robustness.certify.bracket import median_bracket_ratio

    assert median_bracket_ratio(np.array([1.0, 2.0, 3.0]), np.array([2.0, np.inf, 4.0])) == 0.625
    assert np.isnan(median_bracket_ratio(np.array([1.0]), np.array([0.0])))
