"""keras_lpc.metrics._neighbours: Ross's counts by the filtered search equal brute force."""

from __future__ import annotations

import numpy as np
import pytest

from keras_lpc.metrics import interaction_information_per_feature


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
