"""The verified attack ensemble (`minimal_perturbation`) and its attacks, against closed forms.

The models are linear classifiers whose distance to the decision boundary is
known analytically (``|margin| / ||w||`` in L2, ``/ ||w||_1`` in L-inf), the
same classifiers with their input gradients masked (zero, or drowned by a
tiny high-frequency term) and a small trained MLP. Budgets are small.
"""

from __future__ import annotations

import re

import _reference_attacks as reference  # the former host loops (tests/)
import keras
import numpy as np
import pytest
from keras import ops

from keras_lpc.robustness import (
    ATTACKS,
    apgd_accuracy,
    minimal_perturbation,
    pgd_accuracy,
)
from keras_lpc.robustness._minnorm import Scorer, loss_grad, loss_of, losses
from keras_lpc.robustness._radius import pgd_run
from keras_lpc.robustness.apgd import apgd_run
from keras_lpc.robustness.fmn import fmn_attack

SMALL = {"deepfool": 10, "fmn": 30, "pgd": 5, "apgd-ce": 5, "apgd-dlr": 5, "boundary": 15}


def _linear(w, b):
    model = keras.Sequential([keras.Input((w.shape[0],)), keras.layers.Dense(w.shape[1])])
    model.set_weights([w.astype("float32"), b.astype("float32")])
    return model


def _closed_form(w, b, x, norm):
    """Distance from each x to the nearest other-class region of a linear classifier."""
    f = x.astype("float64") @ w + b
    k0 = f.argmax(1)
    rows = np.arange(len(x))
    dist = np.full(len(x), np.inf)
    for j in range(w.shape[1]):
        wj = w[:, [j]] - w[:, k0]  # (d, n)
        size = np.linalg.norm(wj, ord=2 if norm == "l2" else 1, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = (f[rows, k0] - f[:, j]) / size
        dist = np.where(k0 == j, dist, np.minimum(dist, d))
    return dist / np.linalg.norm(x.reshape(len(x), -1), ord=2 if norm == "l2" else np.inf, axis=1)


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
    return w, b, _linear(w, b), rng.normal(size=(24, 6)).astype("float32")


def test_linear_every_attack_finds_the_closed_form(linear3):
    w, b, model, x = linear3
    exact = _closed_form(w, b, x, "l2")
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
    exact = _closed_form(w, b, x, "linf")
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


def test_shattered_gradients_do_not_hide_the_boundary(rng):
    model, x, exact = _masked(rng, "shattered")
    res = minimal_perturbation(model, x, budget=SMALL, verbose=0)
    # the wiggle moves the boundary by at most 1e-3 / ||w_0 - w_1||
    ratio = res.by_attack["boundary"] / exact
    assert ratio.min() >= 0.98 and ratio.max() <= 1.15
    assert (res.per_sample <= 1.15 * exact).all()
    pgd = res.by_attack["pgd"] / exact
    assert np.median(pgd) > 1.3  # PGD over-reads
    df = res.by_attack["deepfool"] / exact
    assert np.mean(~np.isfinite(df) | (df > 1.3)) >= 0.25  # DeepFool fails or over-reads


def test_a_claim_that_does_not_flip_is_never_counted(linear3):
    w, b, model, x = linear3
    exact = _closed_form(w, b, x, "l2")

    def liar(model, x, labels, *, norm, budget, clip, seed):
        # claims a tiny perturbation everywhere; it flips nothing
        return 1e-3 * np.sign(x)

    def half_right(model, x, labels, *, norm, budget, clip, seed):
        # far past the boundary on the first half of the inputs, NaN on the rest
        r = minimal_perturbation(model, x, attacks=["deepfool"], verbose=0).perturbation * 3.0
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

    def wrong_shape(model, x, labels, *, norm, budget, clip, seed):
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
    from keras_lpc.robustness import deepfool, ensemble

    w, b, model, x = linear3
    y = (x @ w + b).argmax(1)
    y[:3] = (y[:3] + 1) % 3  # three misclassified inputs: not attacked, distance 0
    df = deepfool(model, x, max_iter=10)
    ran = minimal_perturbation(model, x, y, attacks=["deepfool"], budget=10, verbose=0)
    calls = []
    monkeypatch.setattr(ensemble, "deepfool", lambda *a, **k: calls.append(1))
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


def test_loss_gradients_match_finite_differences(rng):
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(4)]
    )
    x = rng.normal(size=(6, 5))
    labels = rng.integers(0, 4, size=6)
    scorer = Scorer(model)
    h = 1e-2
    steps = h * np.eye(5)[:, None, :]  # (5, 1, 5): one coordinate at a time
    points = np.concatenate([x[None] + steps, x[None] - steps]).reshape(-1, 5)
    scores = scorer.forward(points.astype("float32")).reshape(2, 5, 6, -1)
    for kind in ("margin", "soft-margin", "ce", "dlr"):
        _, g = loss_grad(scorer, x, labels, kind)
        up = np.stack([losses(s, labels, kind) for s in scores[0]], axis=1)
        down = np.stack([losses(s, labels, kind) for s in scores[1]], axis=1)
        np.testing.assert_allclose(g, (up - down) / (2 * h), rtol=0.05, atol=2e-3, err_msg=kind)
    # the losses on tensors (inside the compiled attacks) are the NumPy ones
    z = scorer.forward(x.astype("float32"))
    for kind in ("margin", "soft-margin", "ce", "dlr"):
        for c in (4, 2):
            on_device = loss_of(
                ops.convert_to_tensor(z[:, :c]), ops.convert_to_tensor(labels % c, "int32"), kind
            )
            np.testing.assert_allclose(
                ops.convert_to_numpy(on_device),
                losses(z[:, :c], labels % c, kind),
                rtol=1e-5,
                atol=1e-6,
                err_msg=kind,
            )


def _mlp(rng, n=48):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )
    return model, rng.normal(size=(n, 4)).astype("float32")


def test_fmn_distance_shrinks_as_steps_grow(rng):
    model, x = _mlp(rng)
    scorer = Scorer(model)
    labels = np.argmax(scorer.forward(x), axis=1)
    sizes, flips = [], []
    for steps in (6, 18, 54):
        r = fmn_attack(scorer, x, labels, norm="l2", steps=steps, clip=None)
        flips.append(np.argmax(scorer.forward((x + r).astype("float32")), axis=1) != labels)
        sizes.append(np.linalg.norm(r, axis=1))
    assert flips[0].mean() <= flips[1].mean() <= flips[2].mean() and flips[2].mean() >= 0.9
    both = flips[0] & flips[1] & flips[2]
    means = [s[both].mean() for s in sizes]
    assert means[0] >= means[1] >= means[2], means


def test_apgd_accuracy(rng):
    # closed form: f_0 - f_1 = 2 x_0, L-inf distance |x_0|
    w, b = np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)
    x, y = np.array([[1.0, 0.0], [3.0, 0.0]], "float32"), np.array([0, 0])
    for loss in ("ce", "dlr"):
        acc = apgd_accuracy(_linear(w, b), x, y, [0.5, 1.5, 3.5], loss=loss, steps=10)
        np.testing.assert_array_equal(acc, [1.0, 0.5, 0.0])
    # on a small trained model, APGD is at least as strong as PGD (same start, eps and budget)
    model, xs = _mlp(rng, n=64)
    ys = (xs[:, 0] + xs[:, 1] > 0).astype("int32") + (xs[:, 2] > 1).astype("int32")
    model.compile(
        keras.optimizers.Adam(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(xs, ys, epochs=15, batch_size=16, verbose=0)
    eps = [0.2, 0.5]
    pgd = pgd_accuracy(model, xs, ys, eps, steps=5, random_start=False)
    apgd = apgd_accuracy(model, xs, ys, eps, steps=5)
    assert (apgd <= pgd).all(), (apgd, pgd)
    assert 0.1 < pgd[1] < pgd[0] < 0.9  # the comparison is not vacuous


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"norm": "l1"}, ValueError, "`norm` must be one of 'l2', 'linf'. Received: norm='l1'"),
        ({"budget": 0}, ValueError, "`budget` must be an integer >= 1. Received: budget=0"),
        ({"budget": 2.5}, TypeError, "`budget` must be an integer >= 1. Received: budget=2.5"),
        ({"budget": {"bondary": 3}}, ValueError, "`budget` must only name attacks"),
        ({"budget": {"fmn": 0}}, ValueError, "`budget['fmn']` must be an integer >= 1"),
        ({"attacks": ["fgsm"]}, ValueError, "`attacks` must name built-in attacks"),
        ({"attacks": []}, ValueError, "`attacks` must be a non-empty list"),
        ({"attacks": [3]}, TypeError, "`attacks` must hold attack names (str) or callables"),
        ({"attacks": ["fmn", "fmn"]}, ValueError, "`attacks` must not repeat a name"),
        ({"clip": (1.0, 0.0)}, ValueError, "`clip` must satisfy lo < hi"),
        ({"clip": 1.0}, ValueError, "`clip` must be a pair (lo, hi)"),
        ({"seed": "a"}, TypeError, "`seed` must be an integer"),
        ({"verbose": 2}, ValueError, "`verbose` must be 0, 1 or 'auto'"),
        ({"y": [0, 5]}, ValueError, "`y` must hold labels in [0, 2) for the model's 2 outputs"),
        ({"y": [0, 1, 1]}, ValueError, "`y` must be a 1-D array with one label per row of `x` (2)"),
    ],
)
def test_bad_input(kwargs, error, message):
    model = _linear(np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2))
    x = np.array([[1.0, 0.0], [2.0, 0.0]], "float32")
    with pytest.raises(error, match=re.escape(message)):
        minimal_perturbation(model, x, **kwargs)


def test_apgd_bad_input():
    model = _linear(np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2))
    x, y = np.array([[1.0, 0.0]], "float32"), np.array([0])
    with pytest.raises(ValueError, match="`loss` must be one of 'ce', 'dlr'. Received: loss='mse'"):
        apgd_accuracy(model, x, y, 0.1, loss="mse")
    with pytest.raises(ValueError, match="`eps` must be a number >= 0"):
        apgd_accuracy(model, x, y, -0.1)


@pytest.fixture(scope="module")
def tiny():
    """A tanh MLP with weights drawn by NumPy (the same model on every backend), 12 inputs
    and their predicted labels; module-wide, so its compiled attacks are shared."""
    rng = np.random.default_rng(7)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(12, activation="tanh"), keras.layers.Dense(4)]
    )
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    x = rng.uniform(-1.0, 1.0, size=(12, 5)).astype("float32")
    return model, x, np.argmax(Scorer(model).forward(x), axis=1)


def test_compiled_fmn_equals_the_host_loop(tiny):
    # the former float64 host loop (tests/_reference_attacks.py) against the compiled
    # float32 one: over a few steps they agree to float32 rounding; over many, an iterate
    # lying within rounding of the boundary can be adversarial in one and not the other
    model, x, labels = tiny
    scorer, host = Scorer(model, batch_size=8), reference.HostScorer(model)
    for norm, clip in (("l2", None), ("linf", (-1.0, 1.0))):
        r = fmn_attack(scorer, x, labels, norm=norm, steps=10, clip=clip)
        expected = reference.fmn_attack(host, x, labels, norm=norm, steps=10, clip=clip)
        assert r.dtype == np.float64 and r.shape == x.shape
        assert (np.abs(expected).max(axis=1) > 0).all()  # every input flipped
        np.testing.assert_allclose(r, expected, rtol=1e-5, atol=1e-5, err_msg=norm)


def _fixed_radius_cases(x):
    """(attack, norm, loss, clip, random start, eps) for `apgd_run` / `pgd_run` checks.

    DLR is constant (1) where the label ranks third, so its gradient there is rounding
    noise that ``s(g)`` turns into a full step: float32 and float64 then walk apart. The
    DLR case has a radius small enough that no input gets there within the checked steps.
    """
    l2, linf = reference.lp_norm(x, "l2"), reference.lp_norm(x, "linf")
    return [
        ("apgd", "l2", "ce", (-1.0, 1.0), True, 0.3 * l2),
        ("apgd", "linf", "dlr", None, False, 0.15 * linf),
        ("pgd", "l2", "ce", None, True, 0.3 * l2),
    ]


def _both_runs(case, scorer, host, x, labels, steps):
    attack, norm, loss, clip, start, eps = case
    kwargs = {"norm": norm, "steps": steps, "clip": clip}
    if attack == "pgd":
        ours = pgd_run(scorer, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
        theirs = reference.pgd_run(host, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
    else:
        kwargs.update(loss=loss, random_start=start)
        ours = apgd_run(scorer, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
        theirs = reference.apgd_run(host, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
    return ours, theirs


def test_compiled_apgd_and_pgd_equal_the_host_loop(tiny):
    # Every adversarial iterate on the sphere ||delta|| = eps ties for the smallest norm up
    # to rounding, so the kept vectors are compared where the norm is exact (L-inf without
    # clip) and the norms, the flips and the inputs broken everywhere.
    model, x, labels = tiny
    scorer, host = Scorer(model, batch_size=8), reference.HostScorer(model)
    for case in _fixed_radius_cases(x):
        ours, theirs = _both_runs(case, scorer, host, x, labels, steps=10)
        name = f"{case[0]} {case[1]} {case[2]} clip={case[3]}"
        np.testing.assert_array_equal(ours.found, theirs.found, err_msg=name)
        assert 0 < ours.found.sum() < len(x), name  # neither all nor none broken
        np.testing.assert_allclose(ours.size, theirs.size, rtol=1e-5, err_msg=name)
        assert ours.delta.dtype == np.float64 and ours.delta.shape == x.shape
        flipped = reference.predict(host, x + ours.delta) != labels
        np.testing.assert_array_equal(flipped, ours.found, err_msg=name)
        size = reference.lp_norm(ours.delta, case[1])[ours.found]
        np.testing.assert_allclose(size, ours.size[ours.found], rtol=1e-5, err_msg=name)
        if case[1] == "linf" and case[3] is None:
            np.testing.assert_allclose(ours.delta, theirs.delta, atol=1e-5, err_msg=name)


def test_compiled_attacks_in_float64_follow_the_host_loop(tiny):
    # both in float64 (TensorFlow): the same distances over a long run; the vectors may
    # differ where two iterates tie for the smallest norm to the last bit (the projection
    # puts iterates on the sphere of the best radius), so norms are compared
    if keras.backend.result_type("float64", "float64") != "float64":
        pytest.skip("float64 runs on the TensorFlow backend only (see cast_model)")
    from keras_lpc.robustness import cast_model

    model, x, labels = tiny
    model, x = cast_model(model), x.astype("float64")
    scorer, host = Scorer(model), reference.HostScorer(model)
    r = fmn_attack(scorer, x, labels, norm="l2", steps=40, clip=(-1.0, 1.0))
    expected = reference.fmn_attack(host, x, labels, norm="l2", steps=40, clip=(-1.0, 1.0))
    size = reference.lp_norm(r, "l2")
    np.testing.assert_allclose(size, reference.lp_norm(expected, "l2"), rtol=1e-10)
    assert np.mean(size > 0) >= 0.8  # inside the box, some inputs cannot flip
    assert (reference.predict(host, x + r) != labels)[size > 0].all()
    # APGD-DLR where float32 walks apart (see _fixed_radius_cases), PGD with clip
    l2, linf = reference.lp_norm(x, "l2"), reference.lp_norm(x, "linf")
    for case in (
        ("apgd", "l2", "dlr", None, False, 0.3 * l2),
        ("pgd", "linf", "ce", (-1.0, 1.0), True, 0.3 * linf),
    ):
        ours, theirs = _both_runs(case, scorer, host, x, labels, steps=20)
        np.testing.assert_array_equal(ours.found, theirs.found)
        assert 0 < ours.found.sum() < len(x)
        np.testing.assert_allclose(ours.size, theirs.size, rtol=1e-10)


@pytest.mark.parametrize("clip", [None, (-0.5, 0.5)])
def test_boundary_normal_estimate_on_the_device_matches_the_formula(rng, clip):
    # the walk's estimate v = mean_i (phi_i - mean phi) u_i, computed in the compiled loop
    # from directions drawn on the device, recomputed here from the same draws on the host
    from keras_lpc import backend
    from keras_lpc.robustness import decision

    w, b = rng.normal(size=(5, 2)), rng.normal(size=2)
    model = _linear(w, b)
    scorer = Scorer(model)
    best = rng.normal(size=(7, 5)).astype("float32")
    labels = rng.integers(0, 2, 7)
    radius = rng.uniform(0.2, 2.0, 7)
    seed = np.array([12345, 3])
    count = 30  # two passes of 20 probes, the last 10 weighted 0

    def estimate(seed):  # the walk's estimate alone, compiled as the walk compiles it
        def make(fn):
            def loop(best, labels, radius, count, seed, bounds, clipped):
                labels = ops.cast(labels, "int32")
                return (
                    decision._normal_sum(fn, best, labels, radius, count, seed, bounds, clipped),
                )

            return loop

        (v,) = scorer.run(
            ("test-boundary-normal",),
            make,
            [best, labels.astype("int32"), radius.astype("float32")],
            [np.asarray(count, "int32"), seed.astype("int32"), *decision._bounds(clip, "float32")],
        )
        return v.astype("float64")

    v = estimate(seed)
    padded = backend.pad(best, backend.bucket(7))
    u = np.concatenate(
        [
            ops.convert_to_numpy(
                backend.normal(
                    ops.convert_to_tensor(padded),
                    20,
                    ops.convert_to_tensor(seed.astype("int32")),
                    i,
                )
            )
            for i in (0, 1)
        ]
    )[:count, :7].astype("float64")
    u /= np.linalg.norm(u, axis=2, keepdims=True)
    probes = best[None] + radius[None, :, None] * u
    if clip is not None:
        probes = np.clip(probes, *clip)
    pred = (probes.reshape(-1, 5) @ w + b).argmax(1).reshape(count, 7)
    phi = np.where(pred != labels[None], 1.0, -1.0)
    mean = phi.mean(axis=0)
    centred = np.where(np.abs(mean) == 1.0, phi, phi - mean)
    expected = np.einsum("km,kmd->md", centred, u) / count
    np.testing.assert_allclose(v, expected, rtol=1e-4, atol=1e-6)
    # a pure function of the seed: the same seed, the same estimate; another seed, another
    np.testing.assert_array_equal(v, estimate(seed))
    other = estimate(np.array([12345, 4]))
    assert not np.allclose(v, other)


@pytest.mark.parametrize(("norm", "tolerance"), [("l2", 1.01), ("linf", 1.01)])
def test_boundary_walk_on_the_device_reaches_the_closest_point(rng, norm, tolerance):
    # a linear two-class model: the closest other-class point lies |margin| / ||u||_dual
    # away (u = w_0 - w_1); the walk starts on the boundary far from it (along a random
    # direction) and must come within `tolerance` of it, every point still adversarial
    import _reference_attacks as reference

    from keras_lpc.robustness import decision

    w, b = rng.normal(size=(8, 2)), rng.normal(size=2)
    model = _linear(w, b)
    scorer = Scorer(model)
    x = rng.normal(size=(12, 8))
    labels = decision.predict(scorer, x)
    u = w[:, 0] - w[:, 1]
    margin = x @ u + b[0] - b[1]
    exact = np.abs(margin) / np.linalg.norm(u, ord=2 if norm == "l2" else 1)
    r = rng.normal(size=x.shape)
    start = x + (-1.001 * margin / (r @ u))[:, None] * r  # just past the boundary along r
    assert (decision.predict(scorer, start) != labels).all()
    size = reference.lp_norm(start - x, norm)
    assert (size > 1.5 * exact).all()  # far from the closest point
    oracle = decision._Oracle(scorer, None)
    walked = decision._walk(
        oracle, x, labels, start.copy(), norm, 40, 100, np.random.default_rng(0)
    )
    assert (decision.predict(scorer, walked) != labels).all()
    ratio = reference.lp_norm(walked - x, norm) / exact
    assert ratio.min() >= 1 - 1e-4 and ratio.max() <= tolerance, ratio
    # queries counted per step: the probes, the step sizes and the boundary search
    counts = np.minimum(100, np.ceil(20 * np.sqrt(np.arange(1, 41))))
    assert oracle.queries == 12 * (counts.sum() + 40 * (12 + 3 * 7))
