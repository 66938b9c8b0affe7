"""The `keras_lpc.robustness` package: its public names, and its measures through the callback."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from _attack_models import linear

import keras_lpc
from keras_lpc.robustness import deepfool


def test_public_names():
    # every name of __all__ is there; the private modules are not needed by users
    import keras_lpc.robustness as robustness

    for name in robustness.__all__:
        assert getattr(robustness, name) is not None, name
    assert {"Scorer", "register_attack", "accuracy_curve", "ATTACKS"} <= set(robustness.__all__)
    from keras_lpc.robustness import attacks, radius  # public modules, as documented

    assert attacks.accuracy_curve is robustness.accuracy_curve
    assert callable(radius.first_order_radius)


def test_robustness_metrics_callback_logs(rng):
    w = np.array([[1.0, -1.0], [0.0, 0.0]])
    x = rng.normal(size=(16, 2)).astype("float32") + np.array([2.0, 0.0], "float32")
    y = np.zeros(16, int)
    model = linear(w, np.zeros(2))
    model.trainable = False  # frozen weights: the logged values are known in closed form
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = keras_lpc.RobustnessMetrics((x, y), every=2, pgd_eps=[0.0, 10.0])
    hist = model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    logs = hist.history
    # computed on the first and the last epoch; frozen weights: the same value twice
    assert logs["val_deepfool"][0] == pytest.approx(logs["val_deepfool"][1])
    res = deepfool(model, x, y=y)
    assert cb.last["deepfool"] == pytest.approx(res.score, rel=1e-5)
    assert cb.last["deepfool_correct"] == pytest.approx(res.score_correct, rel=1e-5)
    assert cb.last["lipschitz_max"] == pytest.approx(2.0, rel=1e-5)
    assert cb.last["lipschitz_mean"] == pytest.approx(2.0, rel=1e-5)
    assert cb.last["pgd_accuracy_0"] == pytest.approx(np.mean(x[:, 0] > 0))
    assert cb.last["pgd_accuracy_10"] == 0.0
    assert logs["val_lipschitz_max"][-1] == pytest.approx(2.0, rel=1e-5)
