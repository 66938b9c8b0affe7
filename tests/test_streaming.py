"""keras_lpc.metrics.streaming: `CollapseAccumulator` equals the one-shot metrics."""

from __future__ import annotations

import numpy as np
import pytest
from _strategies import SETTINGS, assert_close, separated
from hypothesis import given
from hypothesis import strategies as st

from keras_lpc import metrics as M


def clusters(rng, c=4, n=500, d=6, sigma=0.3):
    y = np.repeat(np.arange(c), n)
    means = 3.0 * np.eye(c, d)
    return means[y] + sigma * rng.normal(size=(c * n, d)), y, means, sigma


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


# ---------------------------------------------------------------- properties (hypothesis)


@SETTINGS
@given(separated(max_classes=3, max_size=6), st.data())
def test_streaming_accumulator_matches_one_shot_for_any_batching(data, draw):
    z, labels = data
    order = draw.draw(st.permutations(range(len(z))))
    z, labels = z[order], labels[order]
    cuts = sorted(draw.draw(st.sets(st.integers(1, len(z) - 1), max_size=3)))
    acc = M.CollapseAccumulator()
    for part in np.split(np.arange(len(z)), cuts):
        acc.update(z[part], labels[part])
    for part in np.split(np.arange(len(z)), cuts):
        acc.update_samples(z[part], labels[part])
    streamed, direct = acc.result(), M.collapse_metrics(z, labels)
    assert set(streamed) == set(direct)
    for name, value in direct.items():
        assert_close(streamed[name], value, rtol=1e-9, atol=1e-9)
