"""keras_lpc.metrics.geometry: separation ratio, norms, hypercube alignment, binarity."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _strategies import SEEDS, SETTINGS, assert_close, labelled
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_lpc import metrics as M


def test_hand_values():
    z = np.array([[0.0], [2.0], [10.0], [12.0]])
    np.testing.assert_allclose(M.separation_ratio(z, [0, 0, 1, 1], "none"), [11, 9, 9, 11])
    assert M.norm_cv([[1.0, 0.0], [3.0, 0.0]]) == pytest.approx(0.5)
    assert M.mean_norm([[3.0, 4.0]]) == 5.0


def test_hypercube_and_binarity(rng):
    codes = np.sign(rng.normal(size=(8, 5)))
    y = np.repeat(np.arange(8), 50)
    z = 0.3 * codes[y]
    assert M.hypercube_alignment(z, y) == pytest.approx(1.0)
    balanced = np.tile(np.array([[1.0], [-1.0]]), (500, 1))
    out = M.binarity(balanced, reg_covar=1e-6)
    assert out["peak_distance"] == pytest.approx(2000.0, rel=1e-3)
    noisy = np.sign(rng.normal(size=(4000, 1))) + 0.1 * rng.normal(size=(4000, 1))
    assert M.binarity(noisy)["peak_distance"] == pytest.approx(20.0, rel=0.1)
    assert M.binarity(noisy)["mean_std"] == pytest.approx(0.1 / np.sqrt(1.01), rel=0.1)


def test_single_sample_class():
    z = np.array([[0.0], [2.0], [10.0]])
    y = [0, 0, 1]
    ratio = M.separation_ratio(z, y, "none")
    assert np.isnan(ratio[2])
    assert M.separation_ratio(z, y) == pytest.approx(9.0)  # (10/1 + 8/1) / 2


# ---------------------------------------------------------------- properties (hypothesis)


@SETTINGS
@given(labelled(max_d=4), SEEDS)
def test_hypercube_alignment_has_the_symmetries_of_the_hypercube(data, seed):
    z, labels = data
    d = z.shape[1]
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], d)
    order = rng.permutation(d)
    # Flips, permutations and powers of 2 are exact, so this holds for any z; a
    # zero class mean (which counts as 0) stays exactly zero.
    exact_scale = 2.0 ** rng.integers(-8, 9)
    value = M.hypercube_alignment(z, labels)
    assert_close(M.hypercube_alignment(exact_scale * signs * z[:, order], labels), value)
    means = np.array([z[labels == c].mean(axis=0) for c in np.unique(labels)])
    if np.all(np.linalg.norm(means, axis=1) > 1e-6):  # every class point off the origin
        assert 1.0 / math.sqrt(d) - 1e-12 <= value <= 1.0 + 1e-12
        scale = float(10.0 ** rng.uniform(-2, 2))  # rounds, but no mean is near 0
        assert_close(M.hypercube_alignment(scale * z, labels), value)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 2), st.integers(20, 40), st.floats(0.05, 0.5), SEEDS)
def test_binarity_invariant_to_positive_affine_maps_of_each_dimension(d, n, noise, seed):
    # Noisy binary codes: a well-posed mixture fit. (On a handful of points with
    # duplicates, EM's optimum can jump with a 1-ulp change of the standardised
    # data, so exact invariance is only a property of well-posed fits.)
    rng = np.random.default_rng(seed)
    z = np.sign(rng.normal(size=(n, d))) + noise * rng.normal(size=(n, d))
    scale = 10.0 ** rng.uniform(-2, 2, d)
    shift = 10.0 * rng.normal(size=d)
    before = M.binarity(z)
    after = M.binarity(z * scale + shift)
    for name in ("log_likelihood", "mean_std", "peak_distance"):
        assert_close(after[name], before[name], rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # duplicates: by design
@settings(max_examples=10, deadline=None)
@given(labelled(max_d=2, max_size=3))
def test_binarity_is_finite_on_degenerate_inputs(data):
    z, _ = data  # duplicates, constant dimensions, as few as 2 rows
    out = M.binarity(z)
    assert all(math.isfinite(v) for v in out.values())
    assert out["mean_std"] > 0.0 and out["peak_distance"] >= 0.0
