"""The attacks' losses on the pre-softmax scores, and their cotangents for `Scorer.vjp`.

With ``z`` the scores (N, C), ``y`` the label and ``z_m = max_{j != y} z_j``::

    margin       L = z_y - z_m
    soft-margin  L = z_y - logsumexp_{j != y} z_j
    ce           L = logsumexp_j z_j - z_y
    dlr          L = -(z_y - z_m) / (z_pi1 - z_pi3 + 1e-12)   (pi sorts z decreasing)
                 L = z_m - z_y                                (C = 2)

`loss_of` evaluates them on backend tensors inside the compiled loops, `losses` in
NumPy (float64) on the host, and `COTANGENTS` holds ``dL/dz`` as cotangents
(1, n, C) for `keras_lpc.backend.vjp`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from keras import ops

if TYPE_CHECKING:
    from keras_lpc.robustness._core import Scorer


def _other_max(scores: Any, onehot: Any) -> Any:
    return ops.argmax(ops.where(onehot > 0, -np.inf, scores), axis=1)


def _margin_cot(scores: Any, labels: Any) -> Any:
    # L = z_y - max_{j != y} z_j  ->  dL/dz = e_y - e_m
    c = ops.shape(scores)[1]
    onehot = ops.one_hot(labels, c, dtype=scores.dtype)
    other = ops.one_hot(_other_max(scores, onehot), c, dtype=scores.dtype)
    return ops.expand_dims(onehot - other, 0)


def _ce_cot(scores: Any, labels: Any) -> Any:
    # L = CE(softmax(z), y)  ->  dL/dz = softmax(z) - e_y
    onehot = ops.one_hot(labels, ops.shape(scores)[1], dtype=scores.dtype)
    return ops.expand_dims(ops.softmax(scores, axis=-1) - onehot, 0)


def _dlr_cot(scores: Any, labels: Any) -> Any:
    # L = -(z_y - z_m) / (z_p1 - z_p3 + 1e-12), p = classes sorted by score, m = best other;
    # with 2 classes the ratio is constant, so L = -(z_y - z_m) there.
    c = ops.shape(scores)[1]
    onehot = ops.one_hot(labels, c, dtype=scores.dtype)
    other = ops.one_hot(_other_max(scores, onehot), c, dtype=scores.dtype)
    if c < 3:
        return ops.expand_dims(other - onehot, 0)
    _, top = ops.top_k(scores, 3)
    p1 = ops.one_hot(top[:, 0], c, dtype=scores.dtype)
    p3 = ops.one_hot(top[:, 2], c, dtype=scores.dtype)
    a = ops.sum(scores * (onehot - other), axis=1, keepdims=True)
    d = ops.sum(scores * (p1 - p3), axis=1, keepdims=True) + 1e-12
    return ops.expand_dims(-(onehot - other) / d + a / (d * d) * (p1 - p3), 0)


def _soft_margin_cot(scores: Any, labels: Any) -> Any:
    # L = z_y - logsumexp_{j != y} z_j  ->  dL/dz = e_y - softmax over the other classes
    onehot = ops.one_hot(labels, ops.shape(scores)[1], dtype=scores.dtype)
    soft = ops.softmax(ops.where(onehot > 0, -np.inf, scores), axis=-1)
    return ops.expand_dims(onehot - soft, 0)


COTANGENTS = {
    "soft-margin": _soft_margin_cot,
    "margin": _margin_cot,
    "ce": _ce_cot,
    "dlr": _dlr_cot,
}


def losses(scores: np.ndarray, labels: np.ndarray, kind: str) -> np.ndarray:
    """The loss ``kind`` per sample (N,) from scores (N, C) in NumPy (float64), on the host."""
    rows = np.arange(len(scores))
    zy = scores[rows, labels]
    masked = scores.copy()
    masked[rows, labels] = -np.inf
    zm = masked.max(axis=1)
    if kind == "margin":
        return zy - zm
    if kind == "soft-margin":
        return zy - zm - np.log(np.sum(np.exp(masked - zm[:, None]), axis=1))
    if kind == "ce":
        top = scores.max(axis=1, keepdims=True)
        return np.log(np.sum(np.exp(scores - top), axis=1)) + top[:, 0] - zy
    if scores.shape[1] < 3:
        return zm - zy
    srt = np.sort(scores, axis=1)[:, ::-1]
    return -(zy - zm) / (srt[:, 0] - srt[:, 2] + 1e-12)


def loss_of(scores: Any, labels: Any, kind: str) -> Any:
    """The loss ``kind`` per sample (n,) from scores (n, C) and int32 labels (n,), in keras.ops."""
    c = ops.shape(scores)[1]
    zy = ops.take_along_axis(scores, ops.expand_dims(labels, 1), axis=1)[:, 0]
    masked = ops.where(ops.one_hot(labels, c, dtype=scores.dtype) > 0, -np.inf, scores)
    zm = ops.max(masked, axis=1)
    if kind == "margin":
        return zy - zm
    if kind == "soft-margin":
        return zy - ops.logsumexp(masked, axis=1)
    if kind == "ce":
        return ops.logsumexp(scores, axis=1) - zy
    if c < 3:
        return zm - zy
    top, _ = ops.top_k(scores, 3)
    return -(zy - zm) / (top[:, 0] - top[:, 2] + 1e-12)


def loss_grad(
    scorer: Scorer, x: np.ndarray, labels: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N, C) at ``x`` and the input gradient (N, ...) of the loss ``kind``, float64."""
    scores, grads = scorer.vjp(x, COTANGENTS[kind], labels.astype("int32"))
    return scores, grads[0]
