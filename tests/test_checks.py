"""The input checks of the robustness functions (`keras_lpc.robustness._checks`)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _attack_models import linear, mlp, two_class

from keras_lpc.robustness import accuracy_curve, deepfool, fgsm_accuracy, lipschitz, pgd_accuracy
from keras_lpc.robustness._checks import (
    Curve,
    check_clip,
    check_eps,
    check_inputs,
    check_labels,
    one_or_many,
    prepare,
)


def test_bad_inputs(rng):
    model, x = mlp(rng)
    with pytest.raises(
        ValueError, match=r"`x` must have shape \(N, 6\).*Received: x with shape \(4, 3\)"
    ):
        deepfool(model, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="`x` must be a non-empty batch.*Received: x with shape"):
        deepfool(model, np.zeros((0, 6)))
    with pytest.raises(
        ValueError, match="`max_iter` must be an integer >= 1. Received: max_iter=0"
    ):
        deepfool(model, x, max_iter=0)
    with pytest.raises(
        ValueError, match="`overshoot` must be a number >= 0. Received: overshoot=-0.1"
    ):
        deepfool(model, x, overshoot=-0.1)
    with pytest.raises(
        ValueError, match="`candidates` must be an integer >= 2. Received: candidates=1"
    ):
        deepfool(model, x, candidates=1)
    with pytest.raises(ValueError, match="at least 2 class scores.*with 1 output"):
        deepfool(linear(np.ones((6, 1)), np.zeros(1)), x)
    with pytest.raises(ValueError, match="`eps` must be a number >= 0. Received: eps=-1"):
        fgsm_accuracy(model, x, np.zeros(32, int), -1.0)
    with pytest.raises(ValueError, match="`norm` must be one of 'linf', 'l2'. Received: norm='l1'"):
        pgd_accuracy(model, x, np.zeros(32, int), 0.1, norm="l1")
    with pytest.raises(ValueError, match=r"`y` must hold labels in \[0, 4\)"):
        lipschitz(model, x, np.full(32, 7))


def test_inputs_labels_and_clip_in_closed_form():
    model = two_class()
    x = check_inputs(model, [[1, 0], [True, False]])  # lists and booleans become float32
    assert x.dtype == np.float32 and x.tolist() == [[1.0, 0.0], [1.0, 0.0]]
    np.testing.assert_array_equal(check_labels(np.eye(2)[[1, 0]], 2, 2), [1, 0])  # one-hot
    assert check_clip(None) is None and check_clip([0, 1]) == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"`clip` must be a pair \(lo, hi\). Received: clip=1"):
        check_clip(1)


def test_eps_one_number_or_a_deprecated_sequence():
    assert check_eps(0.5) == ([0.5], True)
    assert check_eps(np.float32(0.25), "pgd_accuracy") == ([0.25], True)
    assert check_eps(np.array(2)) == ([2.0], True)  # a 0-d array is one number
    with pytest.warns(DeprecationWarning, match=r"accuracy_curve\('pgd', model, x, y, eps"):
        assert check_eps([0.1, 0.2], "pgd_accuracy") == ([0.1, 0.2], False)
    with warnings.catch_warnings():  # no caller, or accuracy_curve's budgets: no warning
        warnings.simplefilter("error")
        assert check_eps([0.1], None) == ([0.1], False)
        assert check_eps(Curve([0.1, 0.3]), "fgsm_accuracy") == ([0.1, 0.3], False)
    with pytest.raises(ValueError, match="`eps` must be a number or a non-empty list"):
        check_eps([])
    with pytest.raises(ValueError, match="`eps` must be a number >= 0. Received: eps=-1.0"):
        check_eps([1.0, -1.0])
    assert one_or_many([0.5], True) == 0.5
    many = one_or_many([0.5, 1.0], False)
    assert many.dtype == np.float64 and many.tolist() == [0.5, 1.0]


def test_prepare_gives_scores_and_labels():
    x = np.array([[3.0, 4.0], [-1.0, 2.0]])
    scorer, xc, labels, scores = prepare(two_class(), x, None, 256, "auto")
    np.testing.assert_array_equal(labels, [0, 1])  # the clean predictions
    assert labels.dtype == np.int32 and xc.dtype == np.float32
    np.testing.assert_allclose(scores, [[3.0, -3.0], [-1.0, 1.0]])
    _, _, given, _ = prepare(two_class(), x, [1, 1], 256, "auto")
    np.testing.assert_array_equal(given, [1, 1])
    assert scorer.batch_size == 256 and scorer.outputs == "auto"


def test_a_clip_box_that_misses_the_inputs_is_an_error_naming_both_ranges():
    # raw digits (pixels 0..16) with the box of scaled ones: every attack that clips refuses
    model = two_class()
    x = np.array([[16.0, 0.0], [3.0, 2.0]], "float32")
    message = (
        r"`clip` must contain the inputs: x lies in \[0, 16\], outside the box \[0, 1\] "
        r"that perturbed inputs are clipped to\. .*Received: clip=\(0, 1\)"
    )
    with pytest.raises(ValueError, match=message):
        check_clip((0, 1), x)
    for attack in (
        lambda: deepfool(model, x, clip=(0, 1)),
        lambda: fgsm_accuracy(model, x, [0, 0], 0.1, clip=(0, 1)),
        lambda: pgd_accuracy(model, x, [0, 0], 0.1, clip=(0, 1)),
        lambda: accuracy_curve("apgd", model, x, [0, 0], [0.1], clip=(0, 1)),
    ):
        with pytest.raises(ValueError, match=message):
            attack()
    with pytest.raises(ValueError, match=r"x lies in \[-1, 0.5\], outside the box \[0, 1\]"):
        check_clip((0, 1), np.array([[-1.0], [0.5]]))
    assert check_clip((0, 16), x) == (0.0, 16.0)  # the box may touch the inputs
