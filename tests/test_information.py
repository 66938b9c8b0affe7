"""Information metrics: known answers (nats) for entropy, MI and GIB synergy, and the callback."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc.callbacks import plot_information
from keras_lpc.metrics import (
    information_metrics,
    interaction_information,
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


def test_brute_force_and_tree_paths_agree(rng, monkeypatch):
    from keras_lpc.metrics import _estimators

    z = rng.normal(size=(500, 5))
    y = (z[:, 0] + 0.5 * rng.normal(size=500) > 0).astype(int)
    brute = kl_entropy(z), mutual_information(z, y)
    monkeypatch.setattr(_estimators, "TREE_MAX_DIM", 10)
    tree = kl_entropy(z), mutual_information(z, y)
    np.testing.assert_allclose(brute, tree, rtol=1e-9)


def _ross_by_hand(x, y, k):
    """Ross's counts m_i by dense brute force with exact differences (small inputs only)."""
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    radius = np.array([np.sort(d[i, y == y[i]])[k - 1] for i in range(len(x))])
    return (d <= (radius * (1 + 1e-9) + 1e-12)[:, None]).sum(axis=1)


@pytest.mark.parametrize("columns", [[0], [1], [0, 1, 2, 3], [0, 1, 2, 3, 4]])
def test_neighbour_counts_match_brute_force_with_ties(rng, columns):
    from keras_lpc.metrics import _neighbours

    x = np.round(rng.normal(size=(300, 5)), 1)  # many ties, and duplicate rows
    y = rng.integers(0, 3, 300)
    k_i = np.full(300, 3.0)
    expected = _ross_by_hand(x[:, columns], y, 3)
    if len(columns) == 1:
        got = _neighbours.ross_counts_1d(x[:, columns[0]], y, k_i)
    else:
        counts, unsolved = _neighbours.ross_counts(x, y, k_i, [np.array(columns)])
        got = np.where(unsolved[0], expected, counts[0])
        assert unsolved.mean() < 0.5
    np.testing.assert_array_equal(got, expected)


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


def test_filtered_search_fallback_and_trees_agree(rng, monkeypatch):
    from keras_lpc.metrics import _estimators, _neighbours

    y = rng.integers(0, 4, 600)
    y[:2] = 9  # a class of 2 (k capped at 1)
    z = rng.normal(size=(600, 6)) + np.eye(10, 6)[y]
    filtered = interaction_information_per_feature(z, y)
    monkeypatch.setattr(_neighbours, "MAX_CANDIDATES_PER_ROW", 0)  # every row exact
    np.testing.assert_allclose(interaction_information_per_feature(z, y), filtered, rtol=1e-12)
    monkeypatch.setattr(_estimators, "TREE_MAX_DIM", 10)  # k-d trees in every space
    np.testing.assert_allclose(
        interaction_information_per_feature(z, y), filtered, rtol=1e-9, atol=1e-12
    )


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


# --- interaction information ---------------------------------------------------------


def test_ii_xor_is_pure_synergy(rng):
    z = rng.normal(size=(3000, 2))
    y = (z[:, 0] > 0) ^ (z[:, 1] > 0)
    values = interaction_information_per_feature(z, y)
    mean = interaction_information(z, y)
    assert isinstance(mean, float) and mean == pytest.approx(float(np.mean(values)), abs=1e-12)
    assert mean == pytest.approx(LN2, abs=0.08)
    assert values.shape == (2,)
    with pytest.warns(DeprecationWarning, match="interaction_information_per_feature"):
        old_mean, old_values = interaction_information(z, y, per_feature=True)
    assert old_mean == mean and np.array_equal(old_values, values)


def test_ii_copies_are_pure_redundancy(rng):
    z, y = _copies(rng, d=3)
    assert interaction_information(z, y) == pytest.approx(-LN2, abs=0.01)


def test_ii_features_subset_and_subsampling(rng):
    z = rng.normal(size=(2000, 3))
    y = (z[:, 0] > 0) ^ (z[:, 1] > 0)  # feature 2 is noise
    values = interaction_information_per_feature(z, y)
    # Feature 2 adds nothing: I(z; y) = I(z_{-2}; y) and I(z_2; y) = 0, so II_2 = 0.
    assert abs(values[2]) < 0.08
    assert values[0] == pytest.approx(LN2, abs=0.15)
    sub = interaction_information(z, y, features=[2, 0])
    assert sub == pytest.approx(np.mean(values[[2, 0]]), abs=1e-12)
    assert interaction_information(z, y, max_samples=800, seed=3) == interaction_information(
        z, y, max_samples=800, seed=3
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
        (lambda z, y: interaction_information(z[:, :1], y), ValueError, r"at least 2 features"),
        (lambda z, y: interaction_information(z, y, features=[0, 5]), ValueError, r"`features`"),
        (lambda z, y: interaction_information(z, y, features=[0, 0]), ValueError, r"`features`"),
        (lambda z, y: interaction_information(z, y, features=[0.5]), ValueError, r"`features`"),
    ],
)
def test_bad_input(rng, call, error, match):
    z = rng.normal(size=(40, 3))
    y = rng.integers(0, 2, 40)
    with pytest.raises(error, match=match):
        call(z, y)


# --- callback ------------------------------------------------------------------------


def _model():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="silu"),
            keras_lpc.LatentPointCollapse(3),
            keras.layers.Dense(2),
        ]
    )


def test_callback_logs_the_functions_values(rng):
    x = rng.normal(size=(200, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    model = _model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = keras_lpc.InformationMetrics((x, y), every=2, max_samples=150, prefix="t_")
    history = model.fit(x, y, epochs=2, batch_size=50, verbose=0, callbacks=[cb])
    assert len(history.history["t_entropy"]) == 2  # logged every epoch
    assert cb.computed_epochs == [0, 1]  # the first and the last epoch
    xs, ys = cb.arrays()
    assert len(xs) == 150
    z, _ = cb.latents(xs)
    expected = information_metrics(z, ys, k=3, standardize=True)
    for name, value in expected.items():
        assert history.history["t_" + name][-1] == pytest.approx(value, rel=1e-6, abs=1e-9)
    assert copy.deepcopy(cb).k == 3


def test_callback_bad_arguments():
    x, y = np.zeros((4, 4)), np.zeros(4)
    with pytest.raises(ValueError, match=r"Received: method='x'"):
        keras_lpc.InformationMetrics((x, y), method="x")
    with pytest.raises(ValueError, match=r"`k` must be an integer >= 1. Received: k=0"):
        keras_lpc.InformationMetrics((x, y), k=0)


def test_plot_information(tmp_path):
    logs = {"val_entropy": [1.0, np.nan, 0.5], "val_mutual_information": [0.1, 0.2, 0.3]}
    fig = plot_information({**logs, "gamma": [1e-3, 1e-2, 1e-1]}, path=str(tmp_path / "a.png"))
    assert (tmp_path / "a.png").stat().st_size > 0
    assert len(fig.axes) == 4  # two drawn keys, each with its gamma twin
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), [1, 3])  # the NaN epoch is skipped
    with pytest.raises(ValueError, match=r"`history` must hold"):
        plot_information({"loss": [1.0]})


def test_plot_information_places_sparse_values_at_their_epochs():
    # History keeps only the logged epochs: 2 values over 6 epochs -> epochs 3 and 6.
    fig = plot_information({"loss": [1.0] * 6, "val_entropy": [0.4, 0.2]})
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), [3, 6])
    fig = plot_information({"val_entropy": [0.4, 0.2]}, every=10)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), [10, 20])
    with pytest.raises(ValueError, match=r"`every` must be an integer >= 1. Received: every=0"):
        plot_information({"val_entropy": [0.4]}, every=0)
