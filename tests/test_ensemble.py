"""The verified attack ensemble (`minimal_perturbation`) against closed forms.

The models are linear classifiers whose distance to the decision boundary is
known analytically (``|margin| / ||w||`` in L2, ``/ ||w||_1`` in L-inf) and the
same classifiers with their input gradients masked (zero, or drowned by a
tiny high-frequency term). Budgets are small.
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import keras
import numpy as np
import pytest
from _attack_models import closed_form, linear, quantised, two_class
from keras import ops

from keras_lpc.robustness import ATTACKS, _registry, deepfool, minimal_perturbation
from keras_lpc.robustness.results import Masking

SMALL = {"deepfool": 10, "fmn": 30, "pgd": 5, "apgd-ce": 5, "apgd-dlr": 5, "boundary": 15}


class _Masked(keras.layers.Layer):
    """A linear classifier whose input gradient is zero ("zero") or dominated by a tiny
    term ``1e-3 sin(1e4 v.x)`` on class 0 with ``v`` orthogonal to ``w_0 - w_1`` ("shattered")."""

    def __init__(self, w, b, v, kind, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind
        self.w = self.add_weight(shape=w.shape, initializer="zeros", trainable=False)
        self.b = self.add_weight(shape=b.shape, initializer="zeros", trainable=False)
        self.v = self.add_weight(shape=v.shape, initializer="zeros", trainable=False)
        self.w.assign(w.astype("float32"))
        self.b.assign(b.astype("float32"))
        self.v.assign(v.astype("float32"))

    def call(self, x):
        z = ops.matmul(x, self.w) + self.b
        if self.kind == "zero":
            return ops.stop_gradient(z) + 0.0 * ops.sum(x, axis=1, keepdims=True)
        wiggle = 1e-3 * ops.sin(1e4 * ops.matmul(x, self.v))
        return z + ops.concatenate([wiggle, 0.0 * wiggle], axis=1)


@pytest.fixture
def linear3(rng):
    w, b = rng.normal(size=(6, 3)), rng.normal(size=3)
    return w, b, linear(w, b), rng.normal(size=(24, 6)).astype("float32")


def test_linear_every_attack_finds_theclosed_form(linear3):
    w, b, model, x = linear3
    exact = closed_form(w, b, x, "l2")
    res = minimal_perturbation(model, x, attacks=ATTACKS, budget=SMALL, verbose=0)
    assert set(res.by_attack) == set(ATTACKS)
    for name, dist in res.by_attack.items():
        ratio = dist / exact
        assert np.isfinite(ratio).all(), name
        assert ratio.min() >= 1 - 1e-4, name  # verified: never closer than the boundary
        assert np.median(ratio) <= 1.06, name
    np.testing.assert_allclose(res.by_attack["deepfool"], 1.02 * exact, rtol=1e-3, atol=1e-4)
    table = np.stack(list(res.by_attack.values()))
    np.testing.assert_array_equal(res.per_sample, table.min(axis=0))
    np.testing.assert_allclose(res.per_sample, exact, rtol=0.01)
    assert res.score == pytest.approx(res.per_sample.mean())
    # the reported perturbation flips the prediction and has the reported size
    flipped = model.predict(x + res.perturbation, verbose=0).argmax(1) != res.labels
    assert flipped.all()
    size = np.linalg.norm(res.perturbation, axis=1) / np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(size, res.per_sample, rtol=1e-6)
    assert set(res.best_attack) <= set(ATTACKS)
    assert res.deepfool_overestimate == pytest.approx(1.02, rel=2e-3)
    assert res.deepfool_overestimate_fraction == 0.0


def test_linear_linf(linear3):
    w, b, model, x = linear3
    exact = closed_form(w, b, x, "linf")
    res = minimal_perturbation(model, x, norm="linf", budget=SMALL, verbose=0)
    assert list(res.by_attack) == ["fmn", "apgd-ce", "apgd-dlr", "boundary"]
    for name, dist in res.by_attack.items():
        assert (dist / exact).min() >= 1 - 1e-4, name
        assert np.median(dist / exact) <= 1.05, name
    assert np.median(res.per_sample / exact) <= 1.01
    assert res.deepfool_overestimate is None
    size = np.abs(res.perturbation).max(axis=1) / np.abs(x).max(axis=1)
    np.testing.assert_allclose(size, res.per_sample, rtol=1e-6)


def _masked(rng, kind):
    w, b = rng.normal(size=(6, 2)), rng.normal(size=2)
    u = w[:, 0] - w[:, 1]
    v = rng.normal(size=(6, 1))
    v -= np.outer(u, u @ v) / (u @ u)  # orthogonal to the boundary's normal
    model = keras.Sequential([keras.Input((6,)), _Masked(w, b, v, kind)])
    x = rng.normal(size=(12, 6)).astype("float32")
    exact = np.abs(x @ u + b[0] - b[1]) / np.linalg.norm(u) / np.linalg.norm(x, axis=1)
    return model, x, exact


def test_zero_gradients_do_not_hide_the_boundary(rng):
    model, x, exact = _masked(rng, "zero")
    with pytest.warns(UserWarning, match="signs of gradient masking"):
        res = minimal_perturbation(model, x, attacks=ATTACKS, budget=SMALL, verbose=0)
    # gradient attacks: nothing (DeepFool, FMN) or random-start luck far away (PGD, APGD)
    assert np.isinf(res.by_attack["deepfool"]).all() and np.isinf(res.by_attack["fmn"]).all()
    for name in ("pgd", "apgd-ce", "apgd-dlr"):
        found = np.isfinite(res.by_attack[name])
        assert (res.by_attack[name][found] > 1.3 * exact[found]).all(), name
    ratio = res.by_attack["boundary"] / exact
    assert ratio.min() >= 1 - 1e-4 and ratio.max() <= 1.15
    np.testing.assert_array_equal(res.per_sample, res.by_attack["boundary"])
    assert (res.best_attack == "boundary").all()
    assert np.isnan(res.deepfool_overestimate) and res.deepfool_overestimate_fraction == 1.0
    assert res.masking.suspected and res.masking.zero_gradient == 1.0
    assert res.masking.decision_won == 1.0 and res.masking.gap > 1.3  # PGD: random-start luck


def test_shattered_gradients_do_not_hide_the_boundary(rng):
    model, x, exact = _masked(rng, "shattered")
    with pytest.warns(UserWarning, match="signs of gradient masking"):
        res = minimal_perturbation(model, x, budget=SMALL, verbose=0)
    # the wiggle moves the boundary by at most 1e-3 / ||w_0 - w_1||
    ratio = res.by_attack["boundary"] / exact
    assert ratio.min() >= 0.98 and ratio.max() <= 1.15
    assert (res.per_sample <= 1.15 * exact).all()
    pgd = res.by_attack["pgd"] / exact
    assert np.median(pgd) > 1.3  # PGD over-reads
    df = res.by_attack["deepfool"] / exact
    assert np.mean(~np.isfinite(df) | (df > 1.3)) >= 0.25  # DeepFool fails or over-reads
    # the gradients are not zero, but the gradient-free attack wins by far
    assert res.masking.zero_gradient == 0.0 and res.masking.suspected
    assert res.masking.decision_won >= 0.25 or res.masking.gap >= 1.2


def test_a_quantised_model_is_flagged_and_its_boxes_found(rng):
    # round(4 x) / 4 in front of a linear head: every gradient is zero; the exact
    # distance is that of the closest box of levels of another class
    model, x, labels, exact = quantised(rng)
    with pytest.warns(UserWarning, match="signs of gradient masking") as caught:
        res = minimal_perturbation(model, x, clip=(0.0, 1.0), budget=SMALL, verbose=0)
    # (PyTorch adds NumPy 2's DeprecationWarning about __array__ to the record)
    masking = [str(w.message) for w in caught if "gradient masking" in str(w.message)]
    assert "zero or not finite on 100% of the inputs" in masking[0]
    assert res.masking.zero_gradient == 1.0 and res.masking.suspected
    ratio = res.distance / exact["l2"]
    assert ratio.min() >= 1 - 1e-4 and np.median(ratio) <= 1.02 and ratio.max() <= 1.3
    assert (res.best_attack == "boundary").all()
    assert np.isinf(res.by_attack["fmn"]).all()  # FMN does not move without a gradient


def test_the_deepfool_overestimate_is_capped(linear3):
    # verified perturbations 1e6 times too long (a masked model's DeepFool): each ratio
    # counts 100 at most in the mean, and every input in the share over 1.5 x
    w, b, model, x = linear3
    df = deepfool(model, x, max_iter=10)
    df.perturbation = df.perturbation * 1e6
    res = minimal_perturbation(model, x, attacks=["deepfool", "fmn"], deepfool_result=df, verbose=0)
    assert np.all(res.by_attack["deepfool"] / res.per_sample > 1e5)
    assert res.deepfool_overestimate == 100.0 and res.deepfool_overestimate_fraction == 1.0


def test_a_linear_model_is_not_flagged_and_the_summary_is_short(linear3, capsys):
    w, b, model, x = linear3
    with warnings.catch_warnings():
        # neither the masking nor the tiny-perturbation warning
        warnings.simplefilter("error", UserWarning)
        res = minimal_perturbation(model, x, budget=SMALL, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    # a line before and after each attack, named, the gradient-free one last
    assert [line.split(":")[0] for line in lines[::2]] == [
        f"minimal_perturbation [{i}/4] {name}"
        for i, name in enumerate(("deepfool", "fmn", "pgd", "boundary"), 1)
    ]
    assert "24 inputs (0 searched, the rest refined)" in lines[6]
    assert res.masking == Masking(0.0, 0.0, 0.0, pytest.approx(1.0, abs=0.03), False)
    text = str(res)
    assert len(text.splitlines()) == 9 and "masking not suspected" in text
    assert text.splitlines()[0] == (
        "minimal_perturbation (l2): 24 inputs, 24 attacked (0 misclassified), 24 flipped"
    )
    assert [line.split()[0] for line in text.splitlines()[3:7]] == list(res.by_attack)
    mean = res.per_sample.mean()
    assert f"mean {mean:.4g}" in text.splitlines()[1]
    one = repr(res)
    assert "\n" not in one and one.startswith("MinimalPerturbationResult(norm='l2', inputs=24")
    assert f"score={res.score:.4g}" in one and "masking=False" in one


def test_a_fragile_model_is_named(rng):
    # a Normalization layer adapted to data with three constant features divides them by
    # its epsilon: a perturbation of 1e-6 on one of them flips the prediction
    x = rng.normal(size=(20, 6)).astype("float32")
    x[:, :3] = 1.0
    norm = keras.layers.Normalization()
    norm.adapt(x)
    head = keras.layers.Dense(2)
    model = keras.Sequential([keras.Input((6,)), norm, head])
    head.set_weights([np.array([[1, -1]] * 3 + [[0, 0]] * 3, "float32"), np.zeros(2, "float32")])
    with pytest.warns(UserWarning, match="fragile") as caught:
        res = minimal_perturbation(model, x, attacks=["deepfool", "fmn"], verbose=0)
    message = next(str(w.message) for w in caught if "fragile" in str(w.message))
    assert f"the Normalization layer {norm.name!r} divides 3 of its 6 features" in message
    assert np.median(res.per_sample) < 1e-3 and np.isfinite(res.per_sample).all()


def test_a_claim_that_does_not_flip_is_never_counted(linear3):
    w, b, model, x = linear3
    exact = closed_form(w, b, x, "l2")

    def liar(scorer, x, labels, *, norm, budget, clip, rng):
        # claims a tiny perturbation everywhere; it flips nothing
        return 1e-3 * np.sign(x)

    def half_right(scorer, x, labels, *, norm, budget, clip, rng):
        # far past the boundary on the first half of the inputs, NaN on the rest
        r = minimal_perturbation(scorer.model, x, attacks=["deepfool"], verbose=0).perturbation
        r = r * 3.0
        r[len(x) // 2 :] = np.nan
        return r

    res = minimal_perturbation(model, x, attacks=[liar, half_right, "deepfool"], verbose=0)
    assert np.isinf(res.by_attack["liar"]).all()
    h = len(x) // 2
    np.testing.assert_allclose(
        res.by_attack["half_right"][:h], 3.06 * exact[:h], rtol=1e-3, atol=3e-4
    )
    assert np.isinf(res.by_attack["half_right"][h:]).all()
    assert (res.best_attack == "deepfool").all()
    np.testing.assert_allclose(res.per_sample, 1.02 * exact, rtol=1e-3, atol=1e-4)

    def wrong_shape(scorer, x, labels, *, norm, budget, clip, rng):
        return np.zeros((len(x), 2))

    with pytest.raises(ValueError, match="attack 'wrong_shape' must return a perturbation"):
        minimal_perturbation(model, x, attacks=[wrong_shape], verbose=0)


def test_labels_given_and_clip(linear3):
    w, b, model, x = linear3
    pred = (x @ w + b).argmax(1)
    y = pred.copy()
    y[:4] = (pred[:4] + 1) % 3  # four inputs the model gets wrong
    res = minimal_perturbation(model, x, y, attacks=["deepfool", "fmn"], budget=SMALL, verbose=0)
    assert (res.per_sample[:4] == 0).all() and (res.best_attack[:4] == "misclassified").all()
    assert np.isfinite(res.per_sample[4:]).all() and (res.per_sample[4:] > 0).all()
    np.testing.assert_array_equal(res.labels, y)
    # clip: the perturbed inputs stay in the box; a box that excludes every flip gives inf
    lo, hi = float(x.min()) - 1.0, float(x.max()) + 1.0
    res = minimal_perturbation(model, x, attacks=["fmn"], clip=(lo, hi), budget=20, verbose=0)
    xa = x + res.perturbation
    assert xa.min() >= lo - 1e-6 and xa.max() <= hi + 1e-6


def test_a_deepfool_result_is_reused_not_rerun(linear3, monkeypatch):
    w, b, model, x = linear3
    y = (x @ w + b).argmax(1)
    y[:3] = (y[:3] + 1) % 3  # three misclassified inputs: not attacked, distance 0
    df = deepfool(model, x, max_iter=10)
    ran = minimal_perturbation(model, x, y, attacks=["deepfool"], budget=10, verbose=0)
    calls = []
    entry = dataclasses.replace(_registry._TABLE["deepfool"], fn=lambda *a, **k: calls.append(1))
    monkeypatch.setitem(_registry._TABLE, "deepfool", entry)
    given = minimal_perturbation(model, x, y, attacks=["deepfool"], verbose=0, deepfool_result=df)
    assert calls == []  # DeepFool did not run a second time
    np.testing.assert_array_equal(given.by_attack["deepfool"], ran.by_attack["deepfool"])
    assert (given.per_sample[:3] == 0).all()
    # its perturbations are verified like any attack's: shrunk 10x, none flips
    df.perturbation = df.perturbation / 10.0
    shrunk = minimal_perturbation(model, x, attacks=["deepfool"], verbose=0, deepfool_result=df)
    assert np.isinf(shrunk.by_attack["deepfool"]).all()
    with pytest.raises(ValueError, match=re.escape("`deepfool_result` must come from the same")):
        minimal_perturbation(model, x[:5], attacks=["deepfool"], deepfool_result=df)
    with pytest.raises(TypeError, match=re.escape("`deepfool_result` must be a DeepFoolResult")):
        minimal_perturbation(model, x, deepfool_result=df.perturbation)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"norm": "l1"}, ValueError, "`norm` must be one of 'l2', 'linf'. Received: norm='l1'"),
        ({"budget": 0}, ValueError, "`budget` must be an integer >= 1. Received: budget=0"),
        ({"budget": 2.5}, TypeError, "`budget` must be an integer >= 1. Received: budget=2.5"),
        ({"budget": {"bondary": 3}}, ValueError, "`budget` must only name attacks"),
        ({"budget": {"fmn": 0}}, ValueError, "`budget['fmn']` must be an integer >= 1"),
        ({"attacks": ["fgsm"]}, ValueError, "`attacks` must name registered attacks"),
        ({"attacks": []}, ValueError, "`attacks` must be a non-empty list"),
        ({"attacks": [3]}, TypeError, "`attacks` must hold attack names (str) or callables"),
        ({"attacks": ["fmn", "fmn"]}, ValueError, "`attacks` must not repeat a name"),
        ({"clip": (1.0, 0.0)}, ValueError, "`clip` must satisfy lo < hi"),
        ({"clip": 1.0}, ValueError, "`clip` must be a pair (lo, hi)"),
        ({"seed": "a"}, TypeError, "`seed` must be an integer"),
        ({"verbose": 2}, ValueError, "`verbose` must be 0, 1 or 'auto'"),
        ({"search": "some"}, ValueError, "`search` must be one of 'auto', 'all'"),
        ({"y": [0, 5]}, ValueError, "`y` must hold labels in [0, 2) for the model's 2 outputs"),
        ({"y": [0, 1, 1]}, ValueError, "`y` must be a 1-D array with one label per row of `x` (2)"),
    ],
)
def test_bad_input(kwargs, error, message):
    model = two_class()
    x = np.array([[1.0, 0.0], [2.0, 0.0]], "float32")
    with pytest.raises(error, match=re.escape(message)):
        minimal_perturbation(model, x, **kwargs)
