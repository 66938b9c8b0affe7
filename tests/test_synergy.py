"""keras_lpc.metrics.synergy: interaction information (GIB synergy) on XOR, copies, noise."""

from __future__ import annotations

import numpy as np
import pytest

from keras_lpc.metrics import interaction_information, interaction_information_per_feature

LN2 = np.log(2.0)


def _copies(rng, n=2000, d=2, noise=0.01):
    y = rng.integers(0, 2, n)
    return y[:, None] + noise * rng.normal(size=(n, d)), y


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


@pytest.mark.parametrize(
    "call, error, match",
    [
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
