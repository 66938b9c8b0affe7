"""keras_lpc.metrics._estimators: the k-d tree and the tiled brute-force searches agree."""

from __future__ import annotations

import numpy as np

from keras_lpc.metrics import kl_entropy, mutual_information


def test_brute_force_and_tree_paths_agree(rng, monkeypatch):
    from keras_lpc.metrics import _estimators

    z = rng.normal(size=(500, 5))
    y = (z[:, 0] + 0.5 * rng.normal(size=500) > 0).astype(int)
    brute = kl_entropy(z), mutual_information(z, y)
    monkeypatch.setattr(_estimators, "TREE_MAX_DIM", 10)
    tree = kl_entropy(z), mutual_information(z, y)
    np.testing.assert_allclose(brute, tree, rtol=1e-9)
