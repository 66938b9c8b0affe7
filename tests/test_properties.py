"""Property-based tests (hypothesis) of the pure metric functions in `keras_lpc.metrics`.

Latents are drawn on a grid of quarters, so facts such as "two class means
coincide" or "a point sits on its class mean" hold exactly in the draw
rather than up to rounding. The properties are those the docstrings state:
invariance to rotating, translating and scaling ``z``, to renaming classes
and to reordering samples; the documented special values (``inf``, NaN) on
degenerate inputs and finite values otherwise; agreement between the
one-shot, per-metric and streaming forms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keras_lpc import metrics as M

SETTINGS = settings(max_examples=25, deadline=None)
QUARTERS = st.integers(-16, 16).map(lambda v: v / 4.0)
SEEDS = st.integers(0, 2**32 - 1)
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


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """Overrides conftest's per-test Keras reset: these tests never touch Keras."""
    yield


def assert_close(a, b, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Equal up to rounding; ``inf == inf`` and ``nan == nan``."""
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


@st.composite
def labelled(draw, max_d: int = 3, max_classes: int = 4, min_size: int = 1, max_size: int = 4):
    """Any valid ``(z, labels)``: quarters, duplicates allowed, class sizes >= ``min_size``."""
    d = draw(st.integers(1, max_d))
    sizes = draw(st.lists(st.integers(min_size, max_size), min_size=2, max_size=max_classes))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    z = draw(arrays(np.float64, (len(labels), d), elements=QUARTERS))
    return z, labels


@st.composite
def separated(draw, max_d: int = 3, max_classes: int = 4, max_size: int = 4, spread: bool = False):
    """``(z, labels)`` whose class means are distinct and differ from the global mean.

    Centres are distinct integer points; each sample moves from its centre
    by at most 1/4 per coordinate, so means stay at least 1/2 apart. With
    ``spread``, every class has two samples 1/2 apart (no class collapsed).
    """
    d = draw(st.integers(1, max_d))
    sizes = draw(
        st.lists(st.integers(2 if spread else 1, max_size), min_size=2, max_size=max_classes)
    )
    labels = np.repeat(np.arange(len(sizes)), sizes)
    centres = draw(arrays(np.float64, (len(sizes), d), elements=st.integers(-4, 4).map(float)))
    assume(len(np.unique(centres, axis=0)) == len(sizes))
    noise = draw(arrays(np.float64, (len(labels), d), elements=st.sampled_from([-0.25, 0, 0.25])))
    if spread:
        first = np.searchsorted(labels, np.arange(len(sizes)))
        noise[first, 0], noise[first + 1, 0] = 0.25, -0.25
    z = centres[labels] + noise
    means = np.array([z[labels == c].mean(axis=0) for c in range(len(sizes))])
    assume(np.all(np.linalg.norm(means - z.mean(axis=0), axis=1) > 1e-6))
    return z, labels


def similarity(seed: int, d: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A random rotation (or reflection) ``Q``, translation ``t`` and scale ``s``."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q, 10.0 * rng.normal(size=d), float(10.0 ** rng.uniform(-2, 2))


def rename(labels: np.ndarray, seed: int) -> np.ndarray:
    """Labels mapped one-to-one onto arbitrary (also negative, unsorted) class ids."""
    classes = np.unique(labels)
    new_ids = np.random.default_rng(seed).choice(np.arange(-50, 50), len(classes), replace=False)
    return new_ids[np.searchsorted(classes, labels)]


# ---------------------------------------------------------------- collapse geometry


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


# ------------------------------------------------------ misclassification detection


@SETTINGS
@given(separated(max_classes=3, max_size=5, spread=True), SEEDS)
def test_mahalanobis_score_invariant_to_rotation_translation_and_scale(data, seed):
    # (a collapsed class has no scale: its ridge is absolute, so it needs spread)
    z, labels = data
    q, t, s = similarity(seed, z.shape[1])
    probe = z[::-1] + 0.125
    for covariance in ("shared", "per_class"):
        before = M.mahalanobis_score(z, labels, probe, covariance=covariance)
        after = M.mahalanobis_score(s * z @ q + t, labels, s * probe @ q + t, covariance=covariance)
        assert_close(after, before, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(labelled(max_size=3), SEEDS)
def test_mahalanobis_score_is_finite_and_best_over_classes(data, seed):
    z, labels = data
    renamed = rename(labels, seed)
    classes = np.unique(renamed)
    for covariance in ("shared", "per_class"):
        best = M.mahalanobis_score(z, renamed, z, covariance=covariance)
        assert np.all(np.isfinite(best)) and np.all(best <= 0.0)
        each = np.stack(
            [
                M.mahalanobis_score(
                    z, renamed, z, predictions=np.full(len(z), c), covariance=covariance
                )
                for c in classes
            ]
        )
        # (the minimum over classes expands |a - b|^2 = |a|^2 - 2 a.b + |b|^2, so
        # its rounding is relative to the largest squared whitened distance)
        assert_close(best, each.max(axis=0), rtol=1e-6, atol=1e-9 * (1 + np.abs(each).max()))
        # renaming classes (and the predictions with them) changes nothing
        pred = M.mahalanobis_score(z, renamed, z, predictions=renamed, covariance=covariance)
        assert_close(
            M.mahalanobis_score(z, labels, z, predictions=labels, covariance=covariance), pred
        )


@SETTINGS
@given(
    arrays(np.float64, st.integers(2, 20), elements=QUARTERS),
    st.data(),
)
def test_auroc_depends_only_on_the_order_of_scores(scores, draw):
    correct = np.array(
        draw.draw(st.lists(st.booleans(), min_size=len(scores), max_size=len(scores)))
    )
    assume(correct.any() and not correct.all())
    value = M.misclassification_auroc(scores, correct)
    assert 0.0 <= value <= 1.0
    assert_close(M.misclassification_auroc(np.exp(scores / 4.0), correct), value, rtol=1e-12)
    assert_close(M.misclassification_auroc(3.0 * scores - 7.0, correct), value, rtol=1e-12)
    assert_close(M.misclassification_auroc(-scores, correct), 1.0 - value, rtol=1e-12)


@SETTINGS
@given(
    arrays(
        np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=st.floats(-1e3, 1e3)
    ),
    SEEDS,
)
def test_max_softmax_score_bounds_and_shift_invariance(logits, seed):
    score = M.max_softmax_score(logits)
    n_classes = logits.shape[1]
    assert np.all(score >= 1.0 / n_classes - 1e-12) and np.all(score <= 1.0)
    shift = np.random.default_rng(seed).uniform(-1e3, 1e3, (len(logits), 1))
    assert_close(M.max_softmax_score(logits + shift), score, rtol=1e-9)


# ------------------------------------------------------------------ information


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
