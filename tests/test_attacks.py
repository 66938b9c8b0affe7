"""FGSM and PGD (`keras_lpc.robustness.attacks`): closed forms, the host loop, one PGD loop."""

from __future__ import annotations

import warnings

import _reference_attacks as reference  # the former host loops (tests/)
import keras
import numpy as np
import pytest
from _attack_models import linear, mlp, tiny, tiny_float64

from keras_lpc import backend
from keras_lpc.robustness import (
    Scorer,
    accuracy_curve,
    apgd_accuracy,
    fgsm_accuracy,
    pgd_accuracy,
)
from keras_lpc.robustness.attacks import pgd_attack, pgd_run


@pytest.fixture(scope="module")
def small():
    return tiny()


def test_fgsm_pgd_binary_linear_closed_form(rng):
    w, b = rng.normal(size=(4, 2)), np.zeros(2)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ w).argmax(1)
    model = linear(w, b)
    margin = np.abs((x @ w) @ np.array([1.0, -1.0]))
    diff = w[:, 0] - w[:, 1]
    eps = [0.0, 0.1, 0.3, 0.6, 1.0]
    linf = np.array([np.mean(margin > e * np.abs(diff).sum()) for e in eps])
    l2 = np.array([np.mean(margin > e * np.linalg.norm(diff)) for e in eps])
    np.testing.assert_allclose(accuracy_curve("fgsm", model, x, y, eps), linf)
    np.testing.assert_allclose(accuracy_curve("pgd", model, x, y, eps, steps=5), linf)
    np.testing.assert_allclose(accuracy_curve("pgd", model, x, y, eps, steps=5, norm="l2"), l2)
    assert np.all(np.diff(linf) <= 0) and linf[-1] < linf[0]
    # one number, one float
    assert pgd_accuracy(model, x, y, eps[2], steps=5, norm="l2") == l2[2]
    assert fgsm_accuracy(model, x, y, eps[3]) == linf[3]


def test_pgd_mlp_monotone(rng):
    model, x = mlp(rng)
    y = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    acc = accuracy_curve("pgd", model, x, y, [0.0, 0.05, 0.2, 1.0], steps=10)
    assert acc[0] == 1.0
    assert np.all(np.diff(acc) <= 0) and acc[-1] < 0.5


def test_one_eps_a_float_a_sequence_deprecated_and_the_curve(rng):
    model, x = mlp(rng)
    y = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    for name, attack in (("fgsm", fgsm_accuracy), ("pgd", pgd_accuracy), ("apgd", apgd_accuracy)):
        with warnings.catch_warnings():
            # no deprecation for one number
            warnings.filterwarnings("error", ".*deprecated", DeprecationWarning)
            one = attack(model, x, y, 0.1)
            assert type(one) is float
            assert type(attack(model, x, y, np.float32(0.1))) is float
            assert attack(model, x, y=y, eps=0.1) == one == attack(model, x, None, 0.1)
            curve = accuracy_curve(name, model, x, y, (0.0, 0.1))
        assert curve.dtype == np.float64 and curve.tolist() == [1.0, one]
        assert accuracy_curve(name, model, x, y, 0.1).tolist() == [one]  # a number: one
        with pytest.warns(DeprecationWarning, match=f"{name}_accuracy.*deprecated"):
            listed = attack(model, x, y, [0.1])
        assert isinstance(listed, np.ndarray) and listed.tolist() == [one]
    with pytest.raises(ValueError, match="`attack` must be one of 'fgsm', 'pgd', 'apgd'"):
        accuracy_curve("cw", model, x, y, [0.1])
    with pytest.raises(ValueError, match="`eps` must be a number or a non-empty list"):
        accuracy_curve("pgd", model, x, y, [])


def test_a_curve_draws_one_random_stream(rng):
    # pgd_accuracy's curve: one generator for the whole curve, as the deprecated list did
    model, x = mlp(rng)
    y = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    eps = [0.1, 0.3, 0.5]
    with pytest.warns(DeprecationWarning):
        listed = pgd_accuracy(model, x, y, eps, seed=4)
    np.testing.assert_array_equal(accuracy_curve("pgd", model, x, y, eps, seed=4), listed)


def test_fgsm_is_one_step_of_the_pgd_loop(rng):
    # the same compiled loop: FGSM at eps is PGD (L-inf, 1 step of size eps, no random start)
    model, x = mlp(rng, n=64)
    y = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
    for clip in (None, (-1.0, 1.0)):
        xs = x if clip is None else np.clip(x, *clip)  # the box holds the inputs
        for e in (0.05, 0.2):
            fgsm = fgsm_accuracy(model, xs, y, e, clip=clip)
            pgd = pgd_accuracy(model, xs, y, e, steps=1, step_size=e, random_start=False, clip=clip)
            assert fgsm == pgd, (clip, e)


def test_pgd_accuracy_and_pgd_run_share_one_compiled_loop(small):
    model, x, labels = small
    pgd_accuracy(model, x, labels, 0.2, norm="l2", steps=3)
    store = model.__dict__[backend._CACHE]
    before = set(store)
    pgd_run(
        Scorer(model), x, labels, np.full(len(x), 0.2), norm="l2", steps=3, clip=None,
        rng=np.random.default_rng(0),
    )  # fmt: skip
    assert set(store) == before  # no second PGD loop compiled


def test_compiled_pgd_equals_the_host_loop(small):
    model, x, labels = small
    scorer, host = Scorer(model, batch_size=8), reference.HostScorer(model)
    kwargs = {"norm": "l2", "steps": 10, "clip": None}
    eps = 0.3 * reference.lp_norm(x, "l2")
    ours = pgd_run(scorer, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
    theirs = reference.pgd_run(host, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
    reference.assert_same_run(ours, theirs, host, x, labels, "l2", name="pgd l2")


def test_compiled_pgd_in_float64_follows_the_host_loop():
    # both in float64 (TensorFlow): the same distances over a long run, with clip
    model, x, labels = tiny_float64()
    scorer, host = Scorer(model), reference.HostScorer(model)
    eps = 0.3 * reference.lp_norm(x, "linf")
    kwargs = {"norm": "linf", "steps": 20, "clip": (-1.0, 1.0)}
    ours = pgd_run(scorer, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
    theirs = reference.pgd_run(host, x, labels, eps, rng=np.random.default_rng(3), **kwargs)
    reference.assert_same_run(ours, theirs, host, x, labels, "linf", rtol=1e-10)


def test_the_ensemble_attack_finds_the_linear_distance(rng):
    # the radius search around pgd_run reaches the closed-form distance of a linear model
    w, b = rng.normal(size=(6, 3)), rng.normal(size=3)
    model, x = linear(w, b), rng.normal(size=(10, 6)).astype("float32")
    scorer = Scorer(model)
    labels = scorer.predict(x)
    r = pgd_attack(scorer, x, labels, norm="l2", budget=5, clip=None, rng=np.random.default_rng(0))
    assert (scorer.predict(x + r) != labels).all()
    f = x.astype("float64") @ w + b
    gaps = f[np.arange(10), labels][:, None] - f
    norms = np.linalg.norm(w[:, labels].T[:, :, None] - w[None], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = np.where(gaps > 0, gaps / norms, np.inf).min(axis=1)
    ratio = np.linalg.norm(r, axis=1) / exact
    assert ratio.min() >= 1 - 1e-4 and np.median(ratio) <= 1.06
