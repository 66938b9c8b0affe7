"""`robustness_bracket`: certified <= found per input, the three-way status, the summary line."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from keras_lpc.robustness import robustness_bracket
from keras_lpc.robustness.certify import bracket as bracket_module


@pytest.fixture(scope="module")
def linear():
    """f_0 - f_1 = 2 x_0 (and class 2 far away): the distance to the boundary is |x_0|."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    model.set_weights(
        [
            np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]], "float32"),
            np.array([0.0, 0.0, -50.0], "float32"),
        ]
    )
    x = np.array([[3.0, 4.0], [1.0, 4.0], [-2.0, 1.0], [0.5, 0.0]], "float32")
    return model, x


def test_linear_model_closes_the_bracket(linear):
    model, x = linear
    res = robustness_bracket(model, x, eps=1.5, attacks=["deepfool"])
    np.testing.assert_allclose(res.certified_distance, [3.0, 1.0, 2.0, 0.5], rtol=1e-4)
    # DeepFool overshoots the boundary by 2 % (its `overshoot`): ratio 1 / 1.02
    np.testing.assert_allclose(res.ratio, 1 / 1.02, rtol=1e-3)
    np.testing.assert_allclose(res.certified, res.certified_distance / np.linalg.norm(x, axis=1))
    assert list(res.status) == ["certified", "adversarial", "certified", "adversarial"]
    assert res.fractions() == {"certified": 0.5, "undecided": 0.0, "adversarial": 0.5}
    assert res.seconds["certify"] > 0 and res.seconds["attack"] > 0
    assert res.found_result.best_attack[0] == "deepfool"
    assert res.certified_result.method == "crown"


def test_summary_line_and_misclassified_inputs(linear):
    model, x = linear
    y = np.array([0, 0, 1, 1])  # the last is misclassified
    res = robustness_bracket(model, x, y, method="ibp", eps=0.9, attacks=["deepfool"])
    assert np.isnan(res.ratio[3]) and res.status[3] == "adversarial"
    assert res.certified_distance[3] == 0 and res.found_distance[3] == 0
    text = repr(res)
    assert text == res.summary()
    assert text.startswith("robustness bracket (ibp, l2, 4 inputs): clean accuracy 75.0%")
    assert "certified/found median 0.980" in text
    assert "at eps=0.9: certified robust 75.0%, undecided 0.0%, adversarial found 25.0%" in text
    assert robustness_bracket(model, x, method="lipschitz", attacks=["deepfool"]).status is None


def test_certified_above_found_raises_naming_the_input(linear, monkeypatch):
    model, x = linear
    real = bracket_module.certified_radius

    def inflated(*args, **kwargs):
        res = real(*args, **kwargs)
        distance = res.distance.copy()
        distance[2] *= 1.5
        return dataclasses.replace(res, distance=distance)

    monkeypatch.setattr(bracket_module, "certified_radius", inflated)
    with pytest.raises(RuntimeError, match=r"on input 2: certified 3 > found 2\.0"):
        robustness_bracket(model, x, attacks=["deepfool"])


def test_bracket_arguments(linear):
    model, x = linear
    with pytest.raises(ValueError, match="`eps` must be a number >= 0. Received: eps=-1"):
        robustness_bracket(model, x, eps=-1.0)
    with pytest.raises(ValueError, match="`method` must be one of"):
        robustness_bracket(model, x, method="box")
