"""Shared pieces of the minimum-norm attacks: norms, projections, losses and their gradients.

Every attack keeps its state as float64 NumPy arrays on the host and asks the
model (through `Scorer`) for scores or for input gradients of a loss of the
scores; the loss cotangents are written in ``keras.ops``. ``norm`` is
``"l2"`` or ``"linf"`` throughout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc.robustness._scores import (  # noqa: F401  (check_clip: re-exported)
    batches,
    check_clip,
    forward,
    input_dtype,
    score_function,
)

NORMS = ("l2", "linf")


class Scorer:
    """Batched, compiled scores and loss gradients of a model's pre-softmax scores.

    ``forward`` and ``vjp`` run one compiled call per batch (`keras_lpc.backend`:
    ``jit`` + ``vjp``, cached on the model per cotangent function); the attack
    loops around them stay on the host.
    """

    def __init__(self, model: Any, batch_size: int = 256, outputs: str = "auto") -> None:
        self.model, self.batch_size, self.outputs = model, batch_size, outputs
        self.fn = score_function(model, outputs)
        self.dtype = input_dtype(model)
        self.classes = 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Scores (N, C) as float64."""
        scores = forward(self.model, x.astype(self.dtype), self.batch_size, self.outputs)
        self.classes = scores.shape[1]
        return scores

    def _compiled(self, cotangent_fn: Any) -> Any:
        fn = self.fn

        def run(x: Any, aux: Any) -> tuple[Any, Any]:
            return backend.vjp(fn, x, cotangent_fn, aux)

        key = ("minnorm-vjp", self.outputs, cotangent_fn)
        return backend.cached(self.model, key, lambda: backend.jit(run, self.model.variables))

    def vjp(self, x: np.ndarray, cotangent_fn: Any, aux: np.ndarray) -> tuple[Any, Any]:
        """Scores (N, C) and products (K, N, ...) as float64 (see `keras_lpc.backend.vjp`)."""
        run = self._compiled(cotangent_fn)
        x = x.astype(self.dtype)
        scores, grads = [], []
        for a, b, size in batches(len(x), self.batch_size):
            s, g = run(backend.pad(x[a:b], size), backend.pad(aux[a:b], size))
            scores.append(ops.convert_to_numpy(s)[: b - a])
            grads.append(ops.convert_to_numpy(g)[:, : b - a])
        return (
            np.concatenate(scores).astype("float64"),
            np.concatenate(grads, axis=1).astype("float64"),
        )


def flat(a: np.ndarray) -> np.ndarray:
    """``a`` as (N, D)."""
    return a.reshape(len(a), -1)


def column(v: np.ndarray, ndim: int) -> np.ndarray:
    """A per-sample vector (N,) shaped to broadcast against (N, ...) of ``ndim`` axes."""
    return np.asarray(v).reshape((-1,) + (1,) * (ndim - 1))


def lp_norm(a: np.ndarray, norm: str) -> np.ndarray:
    """Per-sample ``||a_n||_2`` or ``||a_n||_inf`` (N,)."""
    f = flat(a)
    if norm == "l2":
        return np.linalg.norm(f, axis=1)
    return np.max(np.abs(f), axis=1) if f.shape[1] else np.zeros(len(f))


def dual_norm(a: np.ndarray, norm: str) -> np.ndarray:
    """The dual norm of ``a`` per sample: L2 for L2, L1 for L-inf."""
    f = flat(a)
    return np.linalg.norm(f, axis=1) if norm == "l2" else np.sum(np.abs(f), axis=1)


def steepest(g: np.ndarray, norm: str) -> np.ndarray:
    """The unit-norm direction of steepest ascent: ``g / ||g||_2`` or ``sign(g)`` (0 where g = 0)."""
    if norm == "linf":
        return np.sign(g)
    n = column(np.linalg.norm(flat(g), axis=1), g.ndim)
    return np.divide(g, n, out=np.zeros_like(g), where=n > 0)


def project(delta: np.ndarray, eps: np.ndarray, norm: str) -> np.ndarray:
    """``delta`` projected onto the ball ``||delta_n|| <= eps_n``."""
    e = column(eps, delta.ndim)
    if norm == "linf":
        return np.clip(delta, -e, e)
    size = column(np.linalg.norm(flat(delta), axis=1), delta.ndim)
    scale = np.minimum(1.0, np.divide(e, size, out=np.ones_like(size), where=size > 0))
    return delta * scale


def clip_delta(x: np.ndarray, delta: np.ndarray, clip: tuple[float, float] | None) -> np.ndarray:
    """``clip(x + delta) - x`` (``delta`` unchanged without ``clip``)."""
    return delta if clip is None else np.clip(x + delta, *clip) - x


def predict(scorer: Scorer, points: np.ndarray) -> np.ndarray:
    """Predicted classes (N,) at ``points``, evaluated in the model's dtype."""
    return np.argmax(scorer.forward(points.astype(scorer.dtype)), axis=1)


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
    """The loss ``kind`` per sample from scores (N, C) in NumPy (float64)."""
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


def loss_grad(
    scorer: Scorer, x: np.ndarray, labels: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (N, C) at ``x`` and the input gradient (N, ...) of the loss ``kind``.

    ``kind`` is ``"margin"`` (``z_y - max_{j != y} z_j``), ``"ce"`` (cross-entropy)
    or ``"dlr"`` (Croce & Hein's difference of logits ratio).
    """
    scores, grads = scorer.vjp(x, COTANGENTS[kind], labels.astype("int32"))
    return scores, grads[0]
