"""keras_lpc.metrics.collapse: `collapse_metrics`, one pass, equal to the single functions.

Known answers (a simplex ETF, invariances) and hypothesis properties: invariance to
rotating, translating and scaling ``z``, to renaming classes and to reordering samples;
the documented special values (``inf``, NaN) on degenerate inputs, finite values
otherwise; agreement with the per-metric functions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _strategies import SEEDS, SETTINGS, assert_close, labelled, rename, separated, similarity
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keras_lpc import metrics as M


def simplex(c: int) -> np.ndarray:
    """Regular simplex ETF: C centred unit vectors in R^C."""
    e = np.eye(c) - 1.0 / c
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def clusters(rng, c=4, n=500, d=6, sigma=0.3):
    y = np.repeat(np.arange(c), n)
    means = 3.0 * np.eye(c, d)
    return means[y] + sigma * rng.normal(size=(c * n, d)), y, means, sigma


# collapse_metrics entries that depend only on distances between points
SIMILARITY_INVARIANT = (
    "nc1",
    "nc1_dim",
    "nc1_trace_ratio",
    "cdnv",
    "equinorm",
    "equiangularity",
    "max_angle_deviation",
    "separation_ratio",
)


ALL_CLASS_METRICS = (*M.collapse._check_include(None, set()), "nc1_dim")


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
    with pytest.raises(ValueError, match="`include` must be one of"):
        M.collapse_metrics(z, y, include=["nope"])


# ---------------------------------------------------------------- properties (hypothesis)


@SETTINGS
@given(separated(), SEEDS)
def test_collapse_metrics_invariant_to_rotation_translation_and_scale(data, seed):
    z, labels = data
    q, t, s = similarity(seed, z.shape[1])
    before = M.collapse_metrics(z, labels, include=SIMILARITY_INVARIANT)
    after = M.collapse_metrics(s * z @ q + t, labels, include=SIMILARITY_INVARIANT)
    for name in SIMILARITY_INVARIANT:
        assert_close(after[name], before[name], rtol=1e-6, atol=1e-8)


@SETTINGS
@given(labelled(), SEEDS)
def test_collapse_metrics_invariant_to_renaming_classes(data, seed):
    z, labels = data
    before = M.collapse_metrics(z, labels, include=ALL_CLASS_METRICS)
    after = M.collapse_metrics(z, rename(labels, seed), include=ALL_CLASS_METRICS)
    for name in ALL_CLASS_METRICS:
        assert_close(after[name], before[name], rtol=1e-9, atol=1e-12)


@SETTINGS
@given(labelled(), SEEDS)
def test_collapse_metrics_invariant_to_the_order_of_samples(data, seed):
    z, labels = data
    order = np.random.default_rng(seed).permutation(len(z))
    before = M.collapse_metrics(z, labels, include=ALL_CLASS_METRICS)
    after = M.collapse_metrics(z[order], labels[order], include=ALL_CLASS_METRICS)
    for name in ALL_CLASS_METRICS:
        assert_close(after[name], before[name], rtol=1e-9, atol=1e-12)
    per_sample = M.separation_ratio_per_sample(z, labels)
    assert_close(M.separation_ratio_per_sample(z[order], labels[order]), per_sample[order])


@SETTINGS
@given(labelled())
def test_collapse_metrics_equal_the_single_metric_functions(data):
    z, labels = data
    out = M.collapse_metrics(z, labels, include=ALL_CLASS_METRICS)
    singles = {
        "nc1": M.nc1(z, labels),
        "nc1_dim": M.nc1(z, labels, "dim"),
        "nc1_trace_ratio": M.nc1(z, labels, "trace_ratio"),
        "cdnv": M.cdnv(z, labels),
        "equinorm": M.equinorm(z, labels),
        "equiangularity": M.equiangularity(z, labels),
        "max_angle_deviation": M.max_angle_deviation(z, labels),
        "separation_ratio": M.separation_ratio(z, labels),
        "mean_norm": M.mean_norm(z),
        "norm_cv": M.norm_cv(z),
        "hypercube_alignment": M.hypercube_alignment(z, labels),
    }
    assert set(singles) == set(out)
    for name, value in singles.items():
        assert_close(out[name], value, rtol=1e-12, atol=0.0)


@SETTINGS
@given(labelled(max_d=2, max_classes=3, max_size=3))
def test_degenerate_inputs_give_the_documented_special_values(data):
    """Duplicates, classes of one or two samples, d = 1: finite unless documented."""
    z, labels = data
    classes = np.unique(labels)
    means = np.array([z[labels == c].mean(axis=0) for c in classes])
    spread = np.array([((z[labels == c] - m) ** 2).sum() for c, m in zip(classes, means)])
    means_equal = bool(np.all(means == means[0]))
    collapsed = bool(np.all(spread == 0))
    out = M.collapse_metrics(z, labels, include=ALL_CLASS_METRICS)
    assert all(isinstance(v, float) for v in out.values())

    for name in ("nc1", "nc1_dim", "nc1_trace_ratio"):  # inf / NaN only when Sigma_B = 0
        if means_equal:
            assert math.isnan(out[name]) if collapsed else out[name] == math.inf, name
        else:
            assert 0.0 <= out[name] < math.inf, name
    pairs = [
        (np.array_equal(means[i], means[j]), spread[i] + spread[j] > 0)
        for i in range(len(classes))
        for j in range(i + 1, len(classes))
    ]
    if any(same and spread_ for same, spread_ in pairs):
        assert out["cdnv"] == math.inf
    elif all(same for same, _ in pairs):
        assert math.isnan(out["cdnv"])
    else:
        assert 0.0 <= out["cdnv"] < math.inf
    assert math.isnan(out["equinorm"]) if means_equal else 0.0 <= out["equinorm"] < math.inf
    assert 0.0 <= out["equiangularity"] <= 1.0
    assert 0.0 <= out["max_angle_deviation"] <= 2.0
    if np.all(np.bincount(labels) == 1):
        assert math.isnan(out["separation_ratio"])
    else:
        assert out["separation_ratio"] >= 0.0  # may be inf: a sample on its class mean
    assert 0.0 <= out["mean_norm"] < math.inf
    assert math.isnan(out["norm_cv"]) if not np.any(z) else 0.0 <= out["norm_cv"] < math.inf
    assert 0.0 <= out["hypercube_alignment"] <= 1.0 + 1e-12


@SETTINGS
@given(
    arrays(
        np.float64, st.tuples(st.integers(4, 12), st.integers(1, 4)), elements=st.floats(-1e3, 1e3)
    ),
    SEEDS,
)
def test_finite_latents_give_finite_metrics_when_class_means_differ(z, seed):
    labels = np.arange(len(z)) % 2
    means = [z[labels == c].mean(axis=0) for c in (0, 1)]
    assume(np.linalg.norm(means[0] - means[1]) > 1e-3 * (1.0 + np.abs(z).max()))
    out = M.collapse_metrics(z, labels, include=ALL_CLASS_METRICS)
    for name, value in out.items():
        if name == "separation_ratio":  # inf when a sample sits on its class mean
            assert value >= 0.0
        elif name == "norm_cv" and not np.any(z):
            assert math.isnan(value)
        else:
            assert math.isfinite(value), name
