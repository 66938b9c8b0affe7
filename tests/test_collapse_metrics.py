"""Collapse-geometry metrics, streaming, misclassification scores and CollapseMetrics."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc import metrics as M


def simplex(c: int) -> np.ndarray:
    """Regular simplex ETF: C centred unit vectors in R^C."""
    e = np.eye(c) - 1.0 / c
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def clusters(rng, c=4, n=500, d=6, sigma=0.3):
    y = np.repeat(np.arange(c), n)
    means = 3.0 * np.eye(c, d)
    return means[y] + sigma * rng.normal(size=(c * n, d)), y, means, sigma


def test_perfect_collapse():
    z = np.repeat(simplex(3), 5, axis=0)
    y = np.repeat(np.arange(3), 5)
    out = M.collapse_metrics(z, y)
    assert out["nc1"] == pytest.approx(0.0, abs=1e-12)
    assert out["cdnv"] == pytest.approx(0.0, abs=1e-12)
    assert out["separation_ratio"] == np.inf
    assert out["equiangularity"] == pytest.approx(0.0, abs=1e-12)
    assert out["max_angle_deviation"] == pytest.approx(0.0, abs=1e-12)
    assert out["equinorm"] == pytest.approx(0.0, abs=1e-12)
    assert M.separation_ratio(z, y, reduction="median") == np.inf


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


def test_invariances(rng):
    z, y, _, _ = clusters(rng)
    base = M.collapse_metrics(z, y)
    perm = rng.permutation(len(y))
    relabel = np.array([7, 2, 9, 0])[y]
    for out in (M.collapse_metrics(z[perm], y[perm]), M.collapse_metrics(z, relabel)):
        for key in base:
            assert out[key] == pytest.approx(base[key], rel=1e-9)
    scaled = M.collapse_metrics(5.0 * z, y)
    for key in ("nc1", "nc1_trace_ratio", "cdnv", "separation_ratio", "equinorm", "norm_cv"):
        assert scaled[key] == pytest.approx(base[key], rel=1e-9)
    assert scaled["mean_norm"] == pytest.approx(5.0 * base["mean_norm"])


def test_hand_values():
    z = np.array([[0.0], [2.0], [10.0], [12.0]])
    np.testing.assert_allclose(M.separation_ratio(z, [0, 0, 1, 1], "none"), [11, 9, 9, 11])
    assert M.norm_cv([[1.0, 0.0], [3.0, 0.0]]) == pytest.approx(0.5)
    assert M.mean_norm([[3.0, 4.0]]) == 5.0
    square = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]
    assert M.max_angle_deviation(square, [0, 1, 2, 3]) == pytest.approx(4 / 9)
    assert M.ncc_agreement([[0.0], [0.2], [1.0], [0.4]], [0, 0, 1, 1], [0, 0, 1, 0]) == 0.75
    assert M.self_duality([[1.0, 0.0], [-1.0, 0.0]], [0, 1], [[2.0, -2.0], [0.0, 0.0]]) == 0.0
    assert M.self_duality(
        [[1.0, 0.0], [-1.0, 0.0]], [0, 1], [[-1.0, 1.0], [0.0, 0.0]]
    ) == pytest.approx(4.0)


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
    # the singleton contributes a zero covariance: Sigma_W = (1 + 0) / 2
    assert M.nc1(z, y, "trace_ratio") == pytest.approx(0.5 / 22.5)


def test_streaming_equals_one_shot(rng):
    z, y, _, _ = clusters(rng, c=5, n=300, d=8)
    z = z + 100.0  # a large offset tests numerical stability
    preds = np.where(rng.random(len(y)) < 0.1, (y + 1) % 5, y)
    acc = M.CollapseAccumulator()
    parts = np.array_split(rng.permutation(len(y)), 9)
    for p in parts:
        acc.update(z[p], y[p])
    for p in parts:
        acc.update_samples(z[p], y[p], predictions=preds[p])
    direct = M.collapse_metrics(z, y, predictions=preds)
    streamed = acc.result()
    assert set(streamed) == set(direct)
    for key in direct:
        assert streamed[key] == pytest.approx(direct[key], rel=1e-10, abs=1e-12)
    by_hand = np.stack([z[y == c].mean(axis=0) for c in np.unique(y)])
    np.testing.assert_allclose(acc.stats().means, by_hand, rtol=1e-12)


def test_streaming_equals_one_shot_with_a_collapsed_class(rng):
    # Class 0 sits within 1e-6 of a point 1e3 from the origin: without the shift its
    # second moment (~1e6) would swamp its covariance (~1e-12) in float64.
    c, n, d = 3, 400, 5
    y = np.repeat(np.arange(c), n)
    z = 3.0 * np.eye(c, d)[y] + 0.2 * rng.normal(size=(c * n, d))
    z[y == 0] = 1e3 + 1e-6 * rng.normal(size=(n, d))
    order = rng.permutation(len(y))
    z, y = z[order], y[order]
    acc = M.CollapseAccumulator()
    parts = np.array_split(np.arange(len(y)), 6)
    for p in parts:
        acc.update(z[p], y[p])
    for p in parts:
        acc.update_samples(z[p], y[p], predictions=y[p])
    streamed, direct = acc.result(), M.collapse_metrics(z, y, predictions=y)
    for key in direct:
        # R ~ 4e8 divides by distances ~1e-6 to a mean ~1e3, whose last bit (1e-13) moves
        # with the summation order: about 1e-7 of R.
        rel = 1e-6 if key == "separation_ratio" else 1e-9
        assert streamed[key] == pytest.approx(direct[key], rel=rel, abs=1e-12)
    # tr Cov_0 = d * 1e-12 (up to sampling), recovered to a few digits despite |mu_0|^2 = 5e6.
    stats = acc.stats()
    by_hand = np.trace(np.cov(z[y == 0].T, bias=True))
    assert stats.variances[0] == pytest.approx(by_hand, rel=1e-6)
    assert stats.variances[0] == pytest.approx(d * 1e-12, rel=0.2)
    np.testing.assert_allclose(stats.sigma_w, stats.sigma_w.T, rtol=0, atol=0)  # symmetric


def test_auroc_and_scores(rng):
    correct = rng.random(1000) < 0.7
    assert M.misclassification_auroc(correct.astype(float), correct) == 1.0
    assert M.misclassification_auroc(rng.random(1000), correct) == pytest.approx(0.5, abs=0.06)
    np.testing.assert_allclose(M.max_softmax_score([[0.0, 0.0], [1000.0, 0.0]]), [0.5, 1.0])
    y = rng.integers(0, 2, 4000)
    z_fit = 4.0 * y[:, None] + rng.normal(size=(4000, 2))
    for cov in ("shared", "per_class"):
        score = M.mahalanobis_score(z_fit, y, [[0.0, 2.0]], predictions=[0], covariance=cov)
        assert score[0] == pytest.approx(-4.0, rel=0.1)


@pytest.mark.parametrize(
    "z, labels, match",
    [
        (np.zeros(4), [0, 1, 0, 1], "2-D"),
        (np.zeros((4, 2)), [0, 1, 0], "one label per row"),
        (np.zeros((4, 2)), [0, 0, 0, 0], "at least 2 classes"),
        (np.array([[np.nan, 0.0], [1, 1], [2, 2], [3, 3]]), [0, 1, 0, 1], "finite"),
        (np.zeros((4, 2)), [0.5, 1, 0, 1], "integer class ids"),
    ],
)
def test_bad_input(z, labels, match):
    with pytest.raises(ValueError, match=match):
        M.collapse_metrics(z, labels)


def test_bad_arguments():
    z, y = np.eye(2), [0, 1]
    with pytest.raises(ValueError, match="`variant` must be one of"):
        M.nc1(z, y, variant="x")
    with pytest.raises(ValueError, match="`include` must be one of"):
        M.collapse_metrics(z, y, include=["nope"])
    with pytest.raises(ValueError, match="both correct and wrong"):
        M.misclassification_auroc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="`every` must be an integer >= 1"):
        keras_lpc.CollapseMetrics((np.zeros((4, 2)), np.zeros(4)), every=0)
    with pytest.raises(ValueError, match="len\\(x\\)=4 and len\\(y\\)=3"):
        keras_lpc.CollapseMetrics((np.zeros((4, 2)), np.zeros(3)))
    with pytest.raises(ValueError, match="`labels` must be one of"):
        keras_lpc.CollapseMetrics((np.zeros((4, 2)), np.zeros(4)), labels="both")


def test_callback_logs_pure_function_values(rng):
    x = rng.normal(size=(96, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0).astype("int32")
    lpc = keras_lpc.LatentPointCollapse(3, name="lpc")
    model = keras.Sequential([keras.Input((5,)), lpc, keras.layers.Dense(4)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = keras_lpc.CollapseMetrics((x, y), labels="true", every=2)
    cb = copy.deepcopy(cb)  # KerasTuner copies callbacks
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[cb])
    assert len(history.history["val_nc1"]) == 2  # logged every epoch
    assert cb.computed_epochs == [0, 1]  # the first and the last epoch
    z = keras.ops.convert_to_numpy(lpc(x))
    expected = M.collapse_metrics(z, y)
    for name, value in expected.items():
        assert history.history["val_" + name][-1] == pytest.approx(value, rel=1e-4, abs=1e-6)


def test_keras_tuner_objective(rng, tmp_path):
    kt = pytest.importorskip("keras_tuner")
    x = rng.normal(size=(64, 5)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def build(hp):
        model = keras.Sequential(
            [
                keras.Input((5,)),
                keras_lpc.LatentPointCollapse(hp.Int("d", 2, 3)),
                keras.layers.Dense(2),
            ]
        )
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    tuner = kt.RandomSearch(
        build,
        objective=kt.Objective("val_separation_ratio", "max"),
        max_trials=1,
        directory=str(tmp_path),
    )
    tuner.search(
        x, y, epochs=1, verbose=0, callbacks=[keras_lpc.CollapseMetrics((x, y), labels="true")]
    )
    score = tuner.oracle.get_best_trials(1)[0].score
    assert np.isfinite(score) and score > 0


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
