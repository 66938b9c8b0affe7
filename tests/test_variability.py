"""keras_lpc.metrics.variability: NC1 (three variants) and CDNV against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from _strategies import SEEDS, SETTINGS, assert_close, separated
from hypothesis import assume, given

from keras_lpc import metrics as M


def clusters(rng, c=4, n=500, d=6, sigma=0.3):
    y = np.repeat(np.arange(c), n)
    means = 3.0 * np.eye(c, d)
    return means[y] + sigma * rng.normal(size=(c * n, d)), y, means, sigma


def test_isotropic_gaussians_analytic(rng):
    z, y, means, sigma = clusters(rng)
    c, d = 4, 6
    # Sigma_W = sigma^2 I; Sigma_B has c-1 nonzero eigenvalues 9 / c... trace ratio:
    centred = means - means.mean(axis=0)
    tr_b = (centred**2).sum() / c
    expected_ratio = d * sigma**2 / tr_b
    assert M.nc1(z, y, "trace_ratio") == pytest.approx(expected_ratio, rel=0.05)
    # tr(Sigma_W pinv(Sigma_B)) = sigma^2 tr(pinv(Sigma_B)) = sigma^2 * sum 1/eig
    eig = np.linalg.eigvalsh(centred.T @ centred / c)
    expected = sigma**2 * np.sum(1 / eig[eig > 1e-9]) / c
    assert M.nc1(z, y) == pytest.approx(expected, rel=0.08)
    assert M.nc1(z, y, "dim") == pytest.approx(expected / d, rel=0.08)  # tr(.) / (C d)
    # CDNV: (2 d sigma^2) / (2 * 18)
    assert M.cdnv(z, y) == pytest.approx(d * sigma**2 / 18.0, rel=0.08)


def test_single_sample_class():
    z = np.array([[0.0], [2.0], [10.0]])
    y = [0, 0, 1]
    # the singleton contributes a zero covariance: Sigma_W = (1 + 0) / 2
    assert M.nc1(z, y, "trace_ratio") == pytest.approx(0.5 / 22.5)


def test_bad_arguments():
    z, y = np.eye(2), [0, 1]
    with pytest.raises(ValueError, match="`variant` must be one of"):
        M.nc1(z, y, variant="x")


def test_nc1_pinv_tolerance_follows_the_precision_of_the_latents(rng):
    # Three classes on a line (scale 1) plus a second between-class direction at 1e-8 of
    # the scale: below float32 rounding, so it is noise, and pinv must not invert it.
    c, n = 3, 200
    y = np.repeat(np.arange(c), n)
    centres = np.array([[-1.0, 0.0], [0.0, 1e-8], [1.0, 0.0]])
    noise = 0.01 * rng.normal(size=(c * n, 2))
    noise -= np.stack([noise[y == k].mean(axis=0) for k in range(c)])[y]  # means exact
    z = centres[y] + noise
    # The ordinary value: only the real direction, Sigma_B = diag(2/3, 0) (up to sampling).
    means = np.stack([z[y == k].mean(axis=0) for k in range(c)])
    centred = means - means.mean(axis=0)
    resid = z - means[y]
    sigma_w = resid.T @ resid / len(z)
    sigma_b = centred.T @ centred / c
    scipy_linalg = pytest.importorskip("scipy.linalg")
    for latents in (z.astype(np.float32), z):
        eps = np.finfo(latents.dtype).eps
        # scipy's rule on Sigma_B in the latents' precision: rtol = max(shape) * eps
        reference = np.trace(sigma_w @ scipy_linalg.pinv(sigma_b, rtol=c * eps)) / c
        assert M.nc1(latents, y) == pytest.approx(reference, rel=1e-3)
        assert M.nc1(latents, y) < 1.0
    # By hand: Sigma_W ~ 1e-4 I, one eigenvalue 2/3 kept -> 1e-4 * 1.5 / 3.
    assert M.nc1(z.astype(np.float32), y) == pytest.approx(1e-4 * 1.5 / c, rel=0.15)
    # rtol is an argument: 0 keeps every non-zero direction, and the 1e-8 one explodes NC1.
    assert M.nc1(z, y, rtol=0.0) > 1e6
    with pytest.raises(ValueError, match=r"`rtol` must be a number >= 0. Received: rtol=-1.0"):
        M.nc1(z, y, rtol=-1.0)


# ---------------------------------------------------------------- properties (hypothesis)


@SETTINGS
@given(separated(max_d=3, max_classes=5), SEEDS)
def test_nc1_invariant_to_linear_maps_when_the_means_span_the_space(data, seed):
    z, labels = data
    d = z.shape[1]
    means = np.array([z[labels == c].mean(axis=0) for c in np.unique(labels)])
    assume(np.linalg.matrix_rank(means - z.mean(axis=0)) == d)
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(d, d)))
    v, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a = u @ np.diag(rng.uniform(0.5, 2.0, d)) @ v  # condition number <= 4
    for variant in ("papyan", "dim"):
        assert_close(M.nc1(z @ a, labels, variant), M.nc1(z, labels, variant), atol=1e-8)


def test_nc1_is_not_invariant_to_a_shear_when_the_means_do_not_span():
    # C = 2 in d = 2: Sigma_B has rank 1, so pinv depends on the basis.
    z = np.array([[0.0, 1.0], [0.0, -1.0], [3.0, 1.0], [3.0, -1.0]])
    labels = [0, 0, 1, 1]
    shear = np.array([[1.0, 2.0], [0.0, 1.0]])  # (x, y) -> (x + 2 y, y)
    # Sigma_W = diag(0, 1), Sigma_B = diag(2.25, 0): nc1 = (0 / 2.25) / 2 = 0 before;
    # after the shear Sigma_W = [[4, 2], [2, 1]], Sigma_B unchanged: nc1 = (4 / 2.25) / 2.
    assert M.nc1(z, labels) == pytest.approx(0.0, abs=1e-12)
    assert M.nc1(z @ shear.T, labels) == pytest.approx(4.0 / 2.25 / 2.0)
