"""Every public attack, bound and `RobustnessMetrics` under mixed_float16 and mixed_bfloat16.

The model computes in float16 / bfloat16; the scores reach the attacks in float32
(`keras_lpc.robustness.Scorer`), so the attacks compute in float32 as the layer's
penalty does. One linear two-class model ``f = (x_0, -x_0)`` built under each
policy: its weights, inputs and scores are exact in both half formats, so every
answer is the closed form of the float32 doctests.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from _attack_models import linear

from keras_lpc import RobustnessMetrics
from keras_lpc.robustness import (
    Scorer,
    accuracy_curve,
    apgd_accuracy,
    certified_radius,
    deepfool,
    fgsm_accuracy,
    lipschitz,
    minimal_perturbation,
    pgd_accuracy,
)

L2_BUDGET = {"deepfool": 10, "fmn": 20, "pgd": 4, "boundary": 4}
LINF_BUDGET = {"fmn": 20, "apgd-ce": 4, "apgd-dlr": 4, "boundary": 4}


@pytest.fixture(scope="module", params=["mixed_float16", "mixed_bfloat16"])
def model(request):
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(request.param)
    try:
        built = linear(np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2))
        assert built.layers[-1].compute_dtype == request.param.split("_")[1]
        yield built
    finally:
        keras.mixed_precision.set_global_policy(before)


def test_scores_reach_the_attacks_in_float32(model):
    scorer = Scorer(model)
    x = keras.ops.convert_to_tensor(np.array([[3.0, 4.0]], "float32"))
    assert keras.backend.standardize_dtype(scorer.fn(x).dtype) == "float32"
    np.testing.assert_array_equal(scorer.forward(np.array([[3.0, 4.0]])), [[3.0, -3.0]])


def test_deepfool_and_lipschitz(model):
    # the boundary x_0 = 0 lies 3 from (3, 4), ||x|| = 5; ||grad margin|| = ||(2, 0)||
    res = deepfool(model, np.array([[3.0, 4.0]]), overshoot=0.0)
    np.testing.assert_allclose(res.perturbation, [[-3.0001, 0.0]], rtol=1e-6)
    assert res.fooled.tolist() == [True] and res.perturbation.dtype == np.float32
    assert lipschitz(model, np.array([[1.0, 0.0], [3.0, 2.0]])).max == 2.0


def test_accuracies_under_attack(model):
    # margins 2 x_0 = 2 and 6; L-inf and L2 distances to the boundary 1 and 3
    x, y = np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([0, 0])
    assert fgsm_accuracy(model, x, y, 2.0) == 0.5
    assert pgd_accuracy(model, x, y, 2.0, steps=5) == 0.5
    assert apgd_accuracy(model, x, y, 2.0, steps=5) == 0.5
    curve = accuracy_curve("pgd", model, x, y, [0.5, 2.0, 4.0], norm="l2", steps=5)
    np.testing.assert_array_equal(curve, [1.0, 0.5, 0.0])


def test_minimal_perturbation_l2_and_linf_ensembles(model):
    x = np.array([[3.0, 4.0]])  # L2: 3 / 5; L-inf: 3 / 4
    l2 = minimal_perturbation(model, x, budget=L2_BUDGET, verbose=0)
    assert 0.6 <= l2.per_sample[0] < 0.62 and l2.perturbation.dtype == np.float64
    linf = minimal_perturbation(model, x, norm="linf", budget=LINF_BUDGET, verbose=0)
    assert 0.75 <= linf.per_sample[0] < 0.77


def test_robustness_metrics_during_fit(model):
    # lr 0: the weights stay, so the logged values are the closed forms
    model.compile(keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(True))
    x, y = np.array([[3.0, 4.0], [-1.0, 2.0]], "float32"), np.array([0, 1])
    callback = RobustnessMetrics((x, y), every=1, pgd_eps=[0.5, 2.0], certify="crown")
    history = model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    logs = {k: v[0] for k, v in history.history.items()}
    # DeepFool: (3 * 1.02) / 5 and (1 * 1.02) / sqrt(5), overshoot 0.02
    np.testing.assert_allclose(logs["val_deepfool"], np.mean([0.612, 1.02 / 5**0.5]), rtol=1e-3)
    assert logs["val_lipschitz_max"] == 2.0
    assert logs["val_pgd_accuracy_0.5"] == 1.0 and logs["val_pgd_accuracy_2"] == 0.5
    # certified: 3 / 5 and 1 / sqrt(5), both at least 0.05 of the input's norm
    np.testing.assert_allclose(logs["val_certified_radius"], np.mean([0.6, 1 / 5**0.5]), rtol=1e-3)
    assert logs["val_certified_accuracy"] == 1.0


@pytest.mark.parametrize("method", ["crown", "ibp", "lipschitz"])
def test_certified_radius_bounds_in_float32(model, method):
    # exact on a linear model: the boundary x_0 = 0 lies 3 from (3, 4) in L2 and L-inf
    x = np.array([[3.0, 4.0]], "float32")
    l2 = certified_radius(model, x, method=method)
    np.testing.assert_allclose(l2.distance, [3.0], rtol=1e-3)
    np.testing.assert_allclose(l2.per_sample, [0.6], rtol=1e-3)
    linf = certified_radius(model, x, norm="linf", method=method)
    np.testing.assert_allclose(linf.per_sample, [0.75], rtol=1e-3)
