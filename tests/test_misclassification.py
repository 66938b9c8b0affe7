"""keras_lpc.metrics.misclassification: AUROC, max-softmax and Mahalanobis scores."""

from __future__ import annotations

import numpy as np
import pytest
from _strategies import (
    QUARTERS,
    SEEDS,
    SETTINGS,
    assert_close,
    labelled,
    rename,
    separated,
    similarity,
)
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keras_lpc import metrics as M


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


def test_bad_arguments():
    with pytest.raises(ValueError, match="both correct and wrong"):
        M.misclassification_auroc([0.1, 0.2], [True, True])


# ---------------------------------------------------------------- properties (hypothesis)


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
