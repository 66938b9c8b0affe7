"""Misclassification detection: confidence scores and their AUROC (NumPy, float64)."""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_lpc._validation import as_labels, as_latents, check_choice, check_float
from keras_lpc.metrics._stats import (
    chunks,
    class_means,
    encode,
    index_of,
    squared_distances,
)

COVARIANCES = ("shared", "per_class")


def _whitener(cov: np.ndarray, reg: float) -> np.ndarray:
    """``A`` with ``A^T A = inv(cov + reg * (tr(cov)/d) I)`` (ridge relative to the scale)."""
    dim = cov.shape[0]
    scale = np.trace(cov) / dim
    ridge = reg * (scale if scale > 0 else 1.0)
    chol = np.linalg.cholesky(cov + ridge * np.eye(dim))
    return np.linalg.inv(chol)


def mahalanobis_score(
    z_fit: Any,
    labels_fit: Any,
    z: Any,
    *,
    predictions: Any = None,
    fit_predictions: Any = None,
    covariance: str = "shared",
    reg: float = 1e-6,
) -> np.ndarray:
    """Confidence score: minus the squared Mahalanobis distance to a class Gaussian.

    Class Gaussians ``N(mu_c, Sigma)`` are fitted on ``z_fit`` (only the
    correctly classified rows when ``fit_predictions`` is given, as in the
    LPC paper). With ``covariance="shared"``,
    ``Sigma = (1/N) sum_c sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T`` (Lee et
    al. 2018); with ``"per_class"`` each class has its own biased
    covariance. A ridge ``reg * tr(Sigma)/d`` is added so that collapsed
    latents still give a finite score. For each row of ``z``:

    ```
    D_c(z) = (z - mu_c)^T Sigma_c^{-1} (z - mu_c)
    score  = -D_{prediction}(z)     if predictions are given
           = -min_c D_c(z)          otherwise
    ```

    Higher means more confident (units of squared standard deviations).

    Args:
        z_fit: training latents, shape ``(N_fit, d)``.
        labels_fit: their integer labels, shape ``(N_fit,)``.
        z: latents to score, shape ``(N, d)``.
        predictions: predicted class ids of ``z``, shape ``(N,)``.
        fit_predictions: predicted class ids of ``z_fit``; rows where they
            differ from ``labels_fit`` are not used for fitting.
        covariance: ``"shared"`` or ``"per_class"``.
        reg: relative ridge, ``>= 0``.

    Returns:
        Scores, shape ``(N,)``.

    Raises:
        ValueError: bad shapes, non-finite latents, non-integer labels,
            fewer than two classes to fit, a prediction of a class not fitted.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import mahalanobis_score
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 2000)
    >>> z_fit = 4.0 * y[:, None] + rng.normal(size=(2000, 2))  # unit covariance
    >>> print(np.abs(np.round(mahalanobis_score(z_fit, y, [[0.0, 0.0], [4.0, 2.0]]))))
    [0. 4.]
    """
    check_choice("covariance", covariance, COVARIANCES)
    reg = check_float("reg", reg, minimum=0.0)
    fit = as_latents(z_fit, "z_fit")
    lab = as_labels(labels_fit, len(fit), "labels_fit")
    if fit_predictions is not None:
        keep = as_labels(fit_predictions, len(fit), "fit_predictions") == lab
        fit, lab = fit[keep], lab[keep]
    classes, codes = encode(lab)
    arr = as_latents(z, "z")
    if arr.shape[1] != fit.shape[1]:
        raise ValueError(
            f"`z` must have the {fit.shape[1]} features of `z_fit`. Received: z with shape {arr.shape}"
        )
    _, means = class_means(fit, codes, len(classes))
    resid = fit - means[codes]
    pred_idx = None
    if predictions is not None:
        preds = as_labels(predictions, len(arr), "predictions")
        pred_idx = index_of(classes, preds)
        if np.any(pred_idx < 0):
            raise ValueError(
                f"`predictions` must be classes fitted from `labels_fit` ({classes.tolist()}). "
                f"Received: predictions with {sorted(set(preds[pred_idx < 0].tolist()))}"
            )
    if covariance == "shared":
        a = _whitener(resid.T @ resid / len(fit), reg)
        zt, mt = arr @ a.T, means @ a.T
        if pred_idx is not None:
            return -((zt - mt[pred_idx]) ** 2).sum(axis=1)
        best = np.empty(len(arr))
        origin = mt.mean(axis=0)
        for part in chunks(len(arr), len(classes)):
            best[part] = squared_distances(zt[part], mt, origin).min(axis=1)
        return -best
    dist = np.full(len(arr), np.inf)
    for c in range(len(classes)):  # a loop over classes
        rows = codes == c
        a = _whitener(resid[rows].T @ resid[rows] / rows.sum(), reg)
        sel = slice(None) if pred_idx is None else pred_idx == c
        d_c = (((arr[sel] - means[c]) @ a.T) ** 2).sum(axis=1)
        dist[sel] = d_c if pred_idx is not None else np.minimum(dist[sel], d_c)
    return -dist


def max_softmax_score(logits: Any) -> np.ndarray:
    """Confidence score: the largest softmax probability (Hendrycks & Gimpel 2017).

    ```
    score_i = max_c exp(l_ic) / sum_k exp(l_ik) = 1 / sum_k exp(l_ik - max_c l_ic)
    ```

    In ``[1/C, 1]``; computed stably for any finite logits.

    Args:
        logits: shape ``(N, C)``.

    Returns:
        Scores, shape ``(N,)``.

    Raises:
        ValueError: ``logits`` is not 2-D or not finite.

    Example:

    >>> from keras_lpc.metrics import max_softmax_score
    >>> max_softmax_score([[0.0, 0.0], [1000.0, 0.0]])
    array([0.5, 1. ])
    """
    arr = as_latents(logits, "logits")
    return 1.0 / np.exp(arr - arr.max(axis=1, keepdims=True)).sum(axis=1)


def misclassification_auroc(scores: Any, correct: Any) -> float:
    """AUROC of a confidence score at telling correct from wrong predictions.

    The probability that a random correct prediction scores higher than a
    random wrong one (ties count one half), via scikit-learn's
    ``roc_auc_score(correct, scores)``. 1 is perfect, 0.5 is chance.

    Args:
        scores: confidence scores, shape ``(N,)`` (higher = more confident).
        correct: whether each prediction is correct, booleans or 0/1, ``(N,)``.

    Returns:
        The AUROC in ``[0, 1]``.

    Raises:
        ValueError: shapes differ, non-finite scores, ``correct`` not
            boolean, or only correct (or only wrong) predictions.

    Example:

    >>> from keras_lpc.metrics import misclassification_auroc
    >>> print(misclassification_auroc([0.9, 0.8, 0.3, 0.6], [True, True, False, False]))
    1.0
    """
    from sklearn.metrics import roc_auc_score

    s = as_latents(np.asarray(scores).reshape(-1, 1), "scores")[:, 0]
    flags = np.asarray(correct)
    if flags.shape != (len(s),):
        raise ValueError(
            f"`correct` must have shape ({len(s)},) like `scores`. Received: correct with shape {flags.shape}"
        )
    if flags.dtype != bool:
        if not np.all(np.isin(flags, (0, 1))):
            raise ValueError(
                f"`correct` must hold booleans or 0/1. Received: correct with values {np.unique(flags)[:5].tolist()}"
            )
        flags = flags.astype(bool)
    if flags.all() or not flags.any():
        raise ValueError(
            "`correct` must contain both correct and wrong predictions. "
            f"Received: correct with {int(flags.sum())} of {len(flags)} True"
        )
    return float(roc_auc_score(flags, s))
