"""keras_lpc.metrics.information: known answers (nats) for entropy and mutual information."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _strategies import SEEDS, SETTINGS, assert_close, labelled, rename, similarity
from hypothesis import assume, given
from hypothesis import strategies as st

from keras_lpc import metrics as M
from keras_lpc.metrics import (
    information_metrics,
    interaction_information_per_feature,
    kl_entropy,
    mutual_information,
)

LN2 = np.log(2.0)


def _copies(rng, n=2000, d=2, noise=0.01):
    y = rng.integers(0, 2, n)
    return y[:, None] + noise * rng.normal(size=(n, d)), y


# --- entropy -------------------------------------------------------------------------


def test_entropy_correlated_gaussian(rng):
    cov = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]])
    z = rng.multivariate_normal(np.zeros(3), cov, size=4000)
    exact = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * cov))
    assert kl_entropy(z) == pytest.approx(exact, abs=0.06)


def test_entropy_uniform_box(rng):
    # H = sum log(side); the box's edges bias k-NN upwards, more so as d grows.
    sides = np.array([1.0, 2.0, 3.0])
    z = rng.uniform(size=(4000, 3)) * sides
    assert kl_entropy(z) == pytest.approx(np.sum(np.log(sides)), abs=0.12)


def test_entropy_high_dimensional_gaussian(rng):
    # d = 8 takes the tiled brute-force path: H = 0.5 d log(2 pi e) for N(0, I).
    z = rng.normal(size=(4000, 8))
    assert kl_entropy(z) == pytest.approx(4 * np.log(2 * np.pi * np.e), abs=0.15)


def test_entropy_scaling_and_standardized_variant(rng):
    z = rng.normal(size=(1000, 4))
    # H(s z) = H(z) + d log s exactly for the estimator (distances scale by s).
    assert kl_entropy(3.0 * z) == pytest.approx(kl_entropy(z) + 4 * np.log(3.0), abs=1e-9)
    # The authors' variant is scale-free and per dimension: N(0, 1) has 0.5 log(2 pi e).
    assert kl_entropy(0.01 * z, standardize=True) == pytest.approx(
        kl_entropy(z, standardize=True), abs=1e-9
    )
    assert kl_entropy(z, k=20, standardize=True) == pytest.approx(
        0.5 * np.log(2 * np.pi * np.e), abs=0.05
    )


def test_entropy_subsampling_is_deterministic(rng):
    z = rng.normal(size=(3000, 2))
    a = kl_entropy(z, max_samples=500, seed=1)
    assert a == kl_entropy(z, max_samples=500, seed=1)
    assert a != kl_entropy(z, max_samples=500, seed=2)
    assert a == pytest.approx(0.5 * np.log(np.linalg.det(2 * np.pi * np.e * np.eye(2))), abs=0.15)


# --- mutual information --------------------------------------------------------------


def test_mi_duplicated_points_count_every_copy(rng):
    # 40 distinct points in 5-d, 25 copies each: every radius is 0 and every ball holds the
    # 24 other copies, in every subset of the features, so with N_y the class sizes
    # I = psi(N) - <psi(N_y)> + psi(3) - psi(24) in each space and II = -I per feature.
    from scipy.special import digamma

    z = np.repeat(rng.normal(size=(40, 5)), 25, axis=0)
    y = np.repeat(np.arange(40) % 3, 25)
    n_y = np.bincount(y)[y]
    exact = digamma(len(y)) - digamma(n_y).mean() + digamma(3) - digamma(24)
    assert mutual_information(z, y) == pytest.approx(exact, rel=1e-12)
    np.testing.assert_allclose(interaction_information_per_feature(z, y), -exact, rtol=1e-12)


@pytest.mark.parametrize("d", [1, 6])
def test_mi_copy_of_fair_binary_label(rng, d):
    z, y = _copies(rng, d=d)
    assert mutual_information(z, y) == pytest.approx(LN2, abs=0.01)


def test_mi_independent_is_zero(rng):
    y = rng.integers(0, 3, 2000)
    assert abs(mutual_information(rng.normal(size=(2000, 5)), y)) < 0.03


def test_mi_partial_information_gaussian_mixture(rng):
    # z = y + N(0, 1), y fair in {0, 1}: I = H(z) - H(z | y), H(z | y) = 0.5 log(2 pi e).
    y = rng.integers(0, 2, 4000)
    z = y + rng.normal(size=4000)
    grid = np.linspace(-8, 9, 20001)
    pdf = 0.5 * (np.exp(-0.5 * grid**2) + np.exp(-0.5 * (grid - 1) ** 2)) / np.sqrt(2 * np.pi)
    h_z = -np.sum(pdf * np.log(pdf)) * (grid[1] - grid[0])
    exact = h_z - 0.5 * np.log(2 * np.pi * np.e)
    assert mutual_information(z[:, None], y) == pytest.approx(exact, abs=0.02)


def test_mi_invariant_to_invertible_per_feature_maps(rng):
    y = rng.integers(0, 2, 3000)
    z = y[:, None] + rng.normal(size=(3000, 2))
    warped = np.stack([np.exp(z[:, 0]), 5.0 * z[:, 1] ** 3 - 2.0], axis=1)
    assert mutual_information(warped, y) == pytest.approx(mutual_information(z, y), abs=0.04)


def test_mi_labels_any_values_and_one_hot(rng):
    z, y = _copies(rng, n=500)
    base = mutual_information(z, y)
    assert mutual_information(z, np.where(y == 1, "cat", "dog")) == pytest.approx(base)
    assert mutual_information(z, np.eye(2)[y]) == pytest.approx(base)


def test_mi_plugin_on_collapsed_points(rng):
    # Four classes collapsed onto four points: I = H(y) = ln 4 with balanced classes.
    y = np.repeat(np.arange(4), 100)
    z = np.eye(4)[y] + 1e-6 * rng.normal(size=(400, 4))
    assert mutual_information(z, y, method="plugin") == pytest.approx(np.log(4), abs=1e-9)
    # Two classes sharing one point: only 1 bit of the 2 survives.
    merged = np.eye(4)[np.minimum(y, 2)] + 1e-6 * rng.normal(size=(400, 4))
    assert mutual_information(merged, y, method="plugin", n_clusters=3) == pytest.approx(
        np.log(4) - 0.5 * LN2, abs=1e-9
    )


def test_information_metrics_dict(rng):
    z, y = _copies(rng, n=1000)
    out = information_metrics(z, y)
    assert set(out) == {"entropy", "mutual_information", "interaction_information"}
    assert out["mutual_information"] == pytest.approx(LN2, abs=0.01)
    assert out["interaction_information"] == pytest.approx(-LN2, abs=0.01)
    assert np.isnan(information_metrics(z[:, :1], y)["interaction_information"])


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda z, y: kl_entropy(z[:, 0]),
            ValueError,
            r"`z` must be a 2-D array of shape \(N, d\)",
        ),
        (lambda z, y: kl_entropy(z, k=0), ValueError, r"`k` must be an integer >= 1"),
        (lambda z, y: kl_entropy(z, k=2.5), TypeError, r"Received: k=2.5"),
        (lambda z, y: kl_entropy(z, k=50), ValueError, r"`k` must be smaller.*Received: k=50"),
        (lambda z, y: kl_entropy(np.full((5, 2), np.nan)), ValueError, r"`z` must be finite"),
        (lambda z, y: kl_entropy("abc"), TypeError, r"`z` must be a numeric array"),
        (lambda z, y: kl_entropy(z, max_samples=1), ValueError, r"Received: max_samples=1"),
        (
            lambda z, y: mutual_information(z, y[:10]),
            ValueError,
            r"`y` must be a 1-D array with one label per row",
        ),
        (
            lambda z, y: mutual_information(z, y, method="ksg"),
            ValueError,
            r"Received: method='ksg'",
        ),
        (lambda z, y: mutual_information(z, y, n_clusters=0), ValueError, r"`n_clusters` must"),
    ],
)
def test_bad_input(rng, call, error, match):
    z = rng.normal(size=(40, 3))
    y = rng.integers(0, 2, 40)
    with pytest.raises(error, match=match):
        call(z, y)


# --- properties (hypothesis) ---------------------------------------------------------


@SETTINGS
@given(labelled(max_d=5, max_size=5), st.integers(1, 3), SEEDS)
def test_kl_entropy_invariant_to_rigid_motions_and_shifted_by_scaling(data, k, seed):
    z, _ = data
    assume(k < len(z))
    d = z.shape[1]
    q, t, s = similarity(seed, d)
    h = M.kl_entropy(z, k=k)
    assert h < math.inf and not math.isnan(h)  # -inf when k points coincide
    assert_close(M.kl_entropy(z @ q + t, k=k), h, rtol=1e-9, atol=1e-9)
    assert_close(M.kl_entropy(s * z, k=k), h + d * math.log(s), rtol=1e-9, atol=1e-9)
    standardized = M.kl_entropy(z, k=k, standardize=True)
    assert_close(M.kl_entropy(s * z + t, k=k, standardize=True), standardized, atol=1e-9)


@SETTINGS
@given(labelled(max_d=3, max_size=5), SEEDS)
def test_mutual_information_invariant_to_feature_scaling_and_class_names(data, seed):
    z, labels = data
    assume(len(z) > 3)
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-2, 2, z.shape[1])
    shift = 10.0 * rng.normal(size=z.shape[1])
    mi = M.mutual_information(z, labels)
    assert math.isfinite(mi)
    assert_close(M.mutual_information(z * scale + shift, labels), mi, atol=1e-9)
    assert_close(M.mutual_information(z, rename(labels, seed)), mi, atol=1e-9)
    out = M.information_metrics(z, labels)
    assert not math.isnan(out["entropy"]) and out["entropy"] < math.inf
    assert_close(out["mutual_information"], mi, atol=1e-9)
    if z.shape[1] >= 2:
        assert math.isfinite(out["interaction_information"])
    else:
        assert math.isnan(out["interaction_information"])
