"""Fast Minimum-Norm (`keras_lpc.robustness.fmn`): convergence and the former host loop."""

from __future__ import annotations

import _reference_attacks as reference  # the former host loops (tests/)
import keras
import numpy as np
import pytest
from _attack_models import linear, tiny, tiny_float64

from keras_lpc.robustness import Scorer
from keras_lpc.robustness.fmn import _nearest_classes, fmn_attack


@pytest.fixture(scope="module")
def small():
    return tiny()


def test_fmn_distance_shrinks_as_steps_grow(rng):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )
    x = rng.normal(size=(48, 4)).astype("float32")
    scorer = Scorer(model)
    labels = np.argmax(scorer.forward(x), axis=1)
    sizes, flips = [], []
    for steps in (6, 18, 54):
        r = fmn_attack(scorer, x, labels, norm="l2", budget=steps, clip=None)
        flips.append(np.argmax(scorer.forward((x + r).astype("float32")), axis=1) != labels)
        sizes.append(np.linalg.norm(r, axis=1))
    assert flips[0].mean() <= flips[1].mean() <= flips[2].mean() and flips[2].mean() >= 0.9
    both = flips[0] & flips[1] & flips[2]
    means = [s[both].mean() for s in sizes]
    assert means[0] >= means[1] >= means[2], means


def test_fmn_reaches_the_linear_distance(rng):
    # a linear model: the closest other-class point lies |margin| / ||w_0 - w_1||_* away
    w, b = rng.normal(size=(5, 2)), rng.normal(size=2)
    x = rng.normal(size=(16, 5)).astype("float32")
    scorer = Scorer(linear(w, b))
    labels = scorer.predict(x)
    u = w[:, 0] - w[:, 1]
    for norm, dual in (("l2", 2), ("linf", 1)):
        exact = np.abs(x @ u + b[0] - b[1]) / np.linalg.norm(u, ord=dual)
        r = fmn_attack(scorer, x, labels, norm=norm, budget=50, clip=None, rng=None)
        assert (scorer.predict(x + r) != labels).all(), norm
        ratio = reference.lp_norm(r, norm) / exact
        assert ratio.min() >= 1 - 1e-4 and ratio.max() <= 1.02, (norm, ratio)


def test_compiled_fmn_equals_the_host_loop(small):
    # the former float64 host loop (tests/_reference_attacks.py) against the compiled
    # float32 one: over a few steps they agree to float32 rounding; over many, an iterate
    # lying within rounding of the boundary can be adversarial in one and not the other
    model, x, labels = small
    scorer, host = Scorer(model, batch_size=8), reference.HostScorer(model)
    for norm, clip in (("l2", None), ("linf", (-1.0, 1.0))):
        r = fmn_attack(scorer, x, labels, norm=norm, budget=10, clip=clip)
        expected = reference.fmn_attack(host, x, labels, norm=norm, steps=10, clip=clip)
        assert r.dtype == np.float64 and r.shape == x.shape
        assert (np.abs(expected).max(axis=1) > 0).all()  # every input flipped
        np.testing.assert_allclose(r, expected, rtol=1e-5, atol=1e-5, err_msg=norm)


def test_compiled_fmn_in_float64_follows_the_host_loop():
    # both in float64 (TensorFlow): the same distances over a long run; the vectors may
    # differ where two iterates tie for the smallest norm to the last bit (the projection
    # puts iterates on the sphere of the best radius), so norms are compared
    model, x, labels = tiny_float64()
    scorer, host = Scorer(model), reference.HostScorer(model)
    r = fmn_attack(scorer, x, labels, norm="l2", budget=40, clip=(-1.0, 1.0))
    expected = reference.fmn_attack(host, x, labels, norm="l2", steps=40, clip=(-1.0, 1.0))
    size = reference.lp_norm(r, "l2")
    np.testing.assert_allclose(size, reference.lp_norm(expected, "l2"), rtol=1e-10)
    assert np.mean(size > 0) >= 0.8  # inside the box, some inputs cannot flip
    assert (reference.predict(host, x + r) != labels)[size > 0].all()


def _many_classes(rng, d=8, classes=6, n=40):
    """A linear model with 6 classes, ``n`` inputs of which half have a nearest class (in
    L-inf) that is not the runner-up by score, and the exact distances ``margin_j /
    ||w_y - w_j||_1`` (N, C) (inf for the label)."""
    w = rng.normal(size=(d, classes)) * rng.uniform(0.05, 5.0, size=classes)  # unequal norms
    b = rng.normal(size=classes)
    x = rng.normal(size=(50 * n, d)).astype("float32")
    f = x.astype("float64") @ w + b
    gap = f.max(1, keepdims=True) - f
    l1 = np.abs(w[:, f.argmax(1)].T[:, :, None] - w[None]).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        other = np.argmin(np.where(gap > 0, gap / l1, np.inf), axis=1) != np.argsort(-f, 1)[:, 1]
    x = np.concatenate([x[other][: n // 2], x[~other][: n - n // 2]])
    f = x.astype("float64") @ w + b
    labels = f.argmax(1)
    gap = f[np.arange(n), labels][:, None] - f
    l1 = np.abs(w[:, labels].T[:, :, None] - w[None]).sum(1)  # (n, C)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(gap > 0, gap / l1, np.inf)
    return linear(w, b), x, labels, dist


def test_targeted_runs_reach_the_nearest_class(rng):
    # the untargeted run chases the runner-up by score; the second run aims at the nearest
    # class by the first-order distance, exact on a linear model: budget 200 is exact
    model, x, labels, dist = _many_classes(rng)
    scorer = Scorer(model)
    exact = dist.min(axis=1)
    runner_up = np.argsort(-(x @ model.get_weights()[0] + model.get_weights()[1]), axis=1)[:, 1]
    assert np.mean(dist.argmin(axis=1) != runner_up) == 0.5
    order = _nearest_classes(scorer, x, labels, "linf")
    np.testing.assert_array_equal(order[:, 0], dist.argmin(axis=1))
    sizes = {}
    for budget in (100, 200, 400):
        r = fmn_attack(scorer, x, labels, norm="linf", budget=budget, clip=None)
        assert (scorer.predict(x + r) != labels).all(), budget
        sizes[budget] = reference.lp_norm(r, "linf")
    assert (sizes[100] / exact).min() >= 1 - 1e-4
    assert np.mean(sizes[100] / exact > 1.05) >= 0.05  # one run misses the nearest class
    np.testing.assert_allclose(sizes[200], exact, rtol=2e-3)
    # more budget, more runs of the same length: never farther
    assert (sizes[400] <= sizes[200] * (1 + 1e-6)).all()
    assert (sizes[200] <= sizes[100] * (1 + 1e-6)).all()
