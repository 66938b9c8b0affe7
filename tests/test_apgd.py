"""APGD-CE / APGD-DLR (`keras_lpc.robustness.apgd`): closed forms and the former host loop."""

from __future__ import annotations

import _reference_attacks as reference  # the former host loops (tests/)
import keras
import numpy as np
import pytest
from _attack_models import linear, tiny, tiny_float64, two_class

from keras_lpc.robustness import Scorer, accuracy_curve, apgd_accuracy
from keras_lpc.robustness.apgd import _checkpoints, apgd_ce_attack, apgd_dlr_attack, apgd_run


@pytest.fixture(scope="module")
def small():
    return tiny()


def _mlp(rng, n=48):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )
    return model, rng.normal(size=(n, 4)).astype("float32")


def test_apgd_accuracy(rng):
    # closed form: f_0 - f_1 = 2 x_0, L-inf distance |x_0|
    x, y = np.array([[1.0, 0.0], [3.0, 0.0]], "float32"), np.array([0, 0])
    for loss in ("ce", "dlr"):
        model = two_class()  # one model per loss: the trained model below keeps its seed
        acc = accuracy_curve("apgd", model, x, y, [0.5, 1.5, 3.5], loss=loss, steps=10)
        np.testing.assert_array_equal(acc, [1.0, 0.5, 0.0])
        assert apgd_accuracy(model, x, y, 1.5, loss=loss, steps=10) == 0.5
    # on a small trained model, APGD is at least as strong as PGD (same start, eps and budget)
    model, xs = _mlp(rng, n=64)
    ys = (xs[:, 0] + xs[:, 1] > 0).astype("int32") + (xs[:, 2] > 1).astype("int32")
    model.compile(
        keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(xs, ys, epochs=15, batch_size=16, verbose=0)
    eps = [0.2, 0.5]
    pgd = accuracy_curve("pgd", model, xs, ys, eps, steps=5, random_start=False)
    apgd = accuracy_curve("apgd", model, xs, ys, eps, steps=5)
    assert (apgd <= pgd).all(), (apgd, pgd)
    assert 0.1 < pgd[1] < pgd[0] < 0.9  # the comparison is not vacuous


def test_checkpoints():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99, 1.05: w_j = ceil(p_j * steps)
    # below steps; in floats 100 p_3 = 57.00000000000001, so ceil gives 58 there (and at 10
    # steps 6, then 8 twice)
    assert np.flatnonzero(_checkpoints(100)).tolist() == [22, 41, 58, 70, 80, 87, 93, 99]
    assert np.flatnonzero(_checkpoints(10)).tolist() == [3, 5, 6, 8, 9]


def test_apgd_bad_input():
    model = two_class()
    x, y = np.array([[1.0, 0.0]], "float32"), np.array([0])
    with pytest.raises(ValueError, match="`loss` must be one of 'ce', 'dlr'. Received: loss='mse'"):
        apgd_accuracy(model, x, y, 0.1, loss="mse")
    with pytest.raises(ValueError, match="`eps` must be a number >= 0"):
        apgd_accuracy(model, x, y, -0.1)


def test_compiled_apgd_equals_the_host_loop(small):
    # DLR is constant (1) where the label ranks third, so its gradient there is rounding
    # noise that ``s(g)`` turns into a full step: float32 and float64 then walk apart. The
    # DLR case has a radius small enough that no input gets there within the checked steps.
    model, x, labels = small
    scorer, host = Scorer(model, batch_size=8), reference.HostScorer(model)
    l2, linf = reference.lp_norm(x, "l2"), reference.lp_norm(x, "linf")
    for norm, loss, clip, start, eps in (
        ("l2", "ce", (-1.0, 1.0), True, 0.3 * l2),
        ("linf", "dlr", None, False, 0.15 * linf),
    ):
        kwargs = {"norm": norm, "steps": 10, "clip": clip, "loss": loss, "random_start": start}
        ours = apgd_run(scorer, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
        theirs = reference.apgd_run(host, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
        vectors = norm == "linf" and clip is None
        name = f"apgd {norm} {loss} clip={clip}"
        reference.assert_same_run(ours, theirs, host, x, labels, norm, vectors=vectors, name=name)


def test_compiled_apgd_in_float64_follows_the_host_loop():
    # both in float64 (TensorFlow): APGD-DLR where float32 walks apart, the same distances
    model, x, labels = tiny_float64()
    scorer, host = Scorer(model), reference.HostScorer(model)
    eps = 0.3 * reference.lp_norm(x, "l2")
    kwargs = {"norm": "l2", "steps": 20, "clip": None, "loss": "dlr", "random_start": False}
    ours = apgd_run(scorer, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
    theirs = reference.apgd_run(host, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
    reference.assert_same_run(ours, theirs, host, x, labels, "l2", rtol=1e-10)


def test_the_ensemble_attacks_find_the_linear_distance(rng):
    # the radius search around apgd_run reaches the closed-form L-inf distance
    w, b = np.array([[1.0, -1.0], [0.5, 0.0]]), np.zeros(2)
    x = rng.normal(size=(10, 2)).astype("float32")
    scorer = Scorer(linear(w, b))
    labels = scorer.predict(x)
    exact = np.abs(x @ (w[:, 0] - w[:, 1])) / np.abs(w[:, 0] - w[:, 1]).sum()
    for attack in (apgd_ce_attack, apgd_dlr_attack):
        r = attack(
            scorer, x, labels, norm="linf", budget=5, clip=None, rng=np.random.default_rng(0)
        )
        assert (scorer.predict(x + r) != labels).all(), attack.__name__
        ratio = np.abs(r).max(axis=1) / exact
        assert ratio.min() >= 1 - 1e-4 and np.median(ratio) <= 1.05, attack.__name__
