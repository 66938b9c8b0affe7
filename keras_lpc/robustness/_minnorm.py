"""Shared pieces of the minimum-norm attacks: norms, projections, losses and their gradients.

The attacks (FMN, APGD, PGD) are loops written once in ``keras.ops`` on backend
tensors and compiled per batch (`Scorer.run`, `keras_lpc.backend`); the
functions on tensors here serve those loops: `norm_of`, `dual_norm_of`,
`steepest`, `project`, `clip_delta`, `keep_smallest`, `loss_of` and the loss
cotangents `COTANGENTS`. The NumPy functions (`lp_norm`, `dual_norm`,
`losses`, `flat`, `column`, `predict`) serve the host: the radius search,
the verification of the ensemble, the decision-based attack and the first-order
radius, in float64. ``norm`` is ``"l2"`` or ``"linf"`` throughout::

    ||a||_2 = sqrt(sum_i a_i^2),  ||a||_inf = max_i |a_i|   (per sample)
    dual norms: ||g||_2 (L2), ||g||_1 = sum_i |g_i| (L-inf)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
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
    """A model's pre-softmax scores, batched and compiled, and the attack loops run on them.

    ``forward`` and ``vjp`` are one compiled call per batch (`keras_lpc.backend`:
    ``jit`` + ``vjp``, cached on the model per cotangent function); ``run``
    compiles a whole attack loop written in ``keras.ops`` and runs it once per
    batch.
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

    def _compiled(self, key: Hashable, make: Callable[[Callable[[Any], Any]], Any]) -> Any:
        fn, variables = self.fn, self.model.variables
        full = ("minnorm", self.outputs, key)
        return backend.cached(self.model, full, lambda: backend.jit(make(fn), variables))

    def vjp(self, x: np.ndarray, cotangent_fn: Any, aux: np.ndarray) -> tuple[Any, Any]:
        """Scores (N, C) and products (K, N, ...) as float64 (see `keras_lpc.backend.vjp`)."""

        def make(fn: Callable[[Any], Any]) -> Callable[[Any, Any], tuple[Any, Any]]:
            return lambda x, aux: backend.vjp(fn, x, cotangent_fn, aux)

        run = self._compiled(("vjp", cotangent_fn), make)
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

    def run(
        self,
        key: Hashable,
        make: Callable[[Callable[[Any], Any]], Callable[..., tuple[Any, ...]]],
        rows: Sequence[np.ndarray],
        settings: Sequence[np.ndarray],
    ) -> list[np.ndarray]:
        """A compiled attack loop, once per batch; its outputs (N, ...) as NumPy.

        ``make(fn)`` (``fn`` the score function) returns the loop, a
        ``keras.ops`` function of backend tensors ``(*rows, *settings) ->
        tuple of (n, ...) tensors``; it is compiled once per model, ``outputs``
        and ``key`` (which must hold every static setting). ``rows`` are
        per-input arrays (N, ...), cut into batches padded to `backend.bucket`
        sizes; ``settings`` are arrays passed whole (so their values never
        retrace). Inputs are independent in the loops, so padded rows are
        computed and cut off.
        """
        loop = self._compiled(key, make)
        parts = []
        for a, b, size in batches(len(rows[0]), self.batch_size):
            out = loop(*(backend.pad(r[a:b], size) for r in rows), *settings)
            parts.append([np.asarray(ops.convert_to_numpy(t))[: b - a] for t in out])
        return [np.concatenate(p) for p in zip(*parts)]


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


def predict(scorer: Scorer, points: np.ndarray) -> np.ndarray:
    """Predicted classes (N,) at ``points``, evaluated in the model's dtype."""
    return np.argmax(scorer.forward(points.astype(scorer.dtype)), axis=1)


# On backend tensors (keras.ops), inside the compiled loops: a batch (n, ...) at a time.


def per_row(v: Any, like: Any) -> Any:
    """A per-sample tensor (n,) shaped to broadcast against ``like`` (n, ...)."""
    return ops.reshape(v, (-1,) + (1,) * (len(like.shape) - 1))


def _rows(a: Any) -> Any:
    return ops.reshape(a, (-1, int(np.prod(a.shape[1:]))))


def norm_of(a: Any, norm: str) -> Any:
    """Per-sample ``||a_n||_2`` or ``||a_n||_inf`` (n,)."""
    f = _rows(a)
    return ops.sqrt(ops.sum(f * f, axis=1)) if norm == "l2" else ops.max(ops.abs(f), axis=1)


def dual_norm_of(g: Any, norm: str) -> Any:
    """The dual norm per sample (n,): ``||g_n||_2`` for L2, ``||g_n||_1`` for L-inf."""
    return norm_of(g, "l2") if norm == "l2" else ops.sum(ops.abs(_rows(g)), axis=1)


def steepest(g: Any, norm: str) -> Any:
    """The unit-norm direction of steepest ascent: ``g / ||g||_2`` or ``sign(g)`` (0 where g = 0)."""
    if norm == "linf":
        return ops.sign(g)
    size = norm_of(g, "l2")
    return g * per_row(ops.where(size > 0, 1.0 / ops.where(size > 0, size, 1.0), 0.0), g)


def project(delta: Any, eps: Any, norm: str) -> Any:
    """``delta`` projected onto the balls ``||delta_n|| <= eps_n`` (``eps`` (n,)).

    L-inf: ``clip(delta, -eps, eps)``; L2: ``delta * min(1, eps / ||delta||_2)``.
    """
    e = per_row(eps, delta)
    if norm == "linf":
        return ops.minimum(ops.maximum(delta, -e), e)
    size = norm_of(delta, "l2")
    scale = ops.minimum(1.0, ops.where(size > 0, eps / ops.where(size > 0, size, 1.0), 1.0))
    return delta * per_row(scale, delta)


def clip_delta(x: Any, delta: Any, bounds: tuple[Any, Any] | None) -> Any:
    """``clip(x + delta, lo, hi) - x`` (``delta`` unchanged without ``bounds``)."""
    return delta if bounds is None else ops.clip(x + delta, bounds[0], bounds[1]) - x


def keep_smallest(delta: Any, size: Any, adv: Any, best_size: Any, best: Any) -> tuple[Any, Any]:
    """``(best_size, best)`` after seeing ``delta`` of norms ``size`` (n,): replaced where
    ``adv`` (n,) and ``size < best_size``."""
    better = adv & (size < best_size)
    return ops.where(better, size, best_size), ops.where(per_row(better, delta), delta, best)


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
    """The loss ``kind`` per sample from scores (N, C) in NumPy (float64), on the host.

    The formulas of `loss_of` (the same losses on backend tensors).
    """
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
    """The loss ``kind`` per sample (n,) from scores (n, C) and int32 labels (n,), in keras.ops.

    With ``z_m = max_{j != y} z_j`` (`losses` is the host's NumPy version)::

        margin       L = z_y - z_m
        soft-margin  L = z_y - logsumexp_{j != y} z_j
        ce           L = logsumexp_j z_j - z_y
        dlr          L = -(z_y - z_m) / (z_pi1 - z_pi3 + 1e-12)   (pi sorts z decreasing)
                     L = z_m - z_y                                (C = 2)
    """
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
    """Scores (N, C) at ``x`` and the input gradient (N, ...) of the loss ``kind``.

    ``kind`` is ``"margin"`` (``z_y - max_{j != y} z_j``), ``"ce"`` (cross-entropy)
    or ``"dlr"`` (Croce & Hein's difference of logits ratio).
    """
    scores, grads = scorer.vjp(x, COTANGENTS[kind], labels.astype("int32"))
    return scores, grads[0]
