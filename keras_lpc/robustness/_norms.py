"""Norms, projections and the random start of the attacks, on backend tensors and in NumPy.

``norm`` is ``"l2"`` or ``"linf"`` throughout::

    ||a||_2 = sqrt(sum_i a_i^2),  ||a||_inf = max_i |a_i|   (per sample)
    dual norms: ||g||_2 (L2), ||g||_1 = sum_i |g_i| (L-inf)

The functions on tensors (`norm_of`, `dual_norm_of`, `steepest`, `project`,
`clip_delta`, `keep_smallest`, `per_row`) serve the attack loops written in
``keras.ops`` and compiled per batch (`keras_lpc.robustness.Scorer.run`), a
batch ``(n, ...)`` at a time. The NumPy ones (`lp_norm`, `dual_norm`, `flat`,
`column`, `draw_start`, `Tracker`) serve the host: the radius search, the
verification of the ensemble, the decision-based attack's start, in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

NORMS = ("l2", "linf")


# NumPy, on the host: (N, ...) arrays


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


def draw_start(x: np.ndarray, eps: np.ndarray, norm: str, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random point of each ball ``||delta_n|| <= eps_n`` (N, ...), drawn by ``rng``.

    L-inf: ``eps u``, ``u`` uniform in [-1, 1]^D; L2: a Gaussian direction scaled to
    ``eps U^(1/D)`` (``U`` uniform in [0, 1]), uniform in the ball. The one random
    start of PGD and APGD.
    """
    e = column(eps, x.ndim)
    if norm == "linf":
        return rng.uniform(-1.0, 1.0, size=x.shape) * e
    u = rng.standard_normal(x.shape)
    u /= column(np.maximum(np.linalg.norm(flat(u), axis=1), 1e-30), x.ndim)
    return u * e * column(rng.uniform(size=len(x)) ** (1.0 / flat(x).shape[1]), x.ndim)


class Tracker:
    """The smallest-norm adversarial perturbation seen per input: ``size`` (N,), ``delta``."""

    def __init__(self, x: np.ndarray, norm: str) -> None:
        self.norm = norm
        self.size = np.full(len(x), np.inf)
        self.delta = np.zeros_like(x)

    @classmethod
    def of(cls, size: np.ndarray, delta: np.ndarray, norm: str) -> Tracker:
        """A tracker holding ``size`` (N,) and ``delta`` (N, ...), as float64."""
        track = cls(delta, norm)
        track.size, track.delta = size.astype("float64"), delta.astype("float64")
        return track

    def see(self, delta: np.ndarray, adv: np.ndarray) -> None:
        """Keep ``delta`` where it is adversarial (``adv``) and smaller than the best so far."""
        size = lp_norm(delta, self.norm)
        better = adv & (size < self.size)
        self.size[better] = size[better]
        self.delta[better] = delta[better]

    @property
    def found(self) -> np.ndarray:
        """Whether an adversarial perturbation was seen, per input."""
        return np.isfinite(self.size)


# keras.ops, inside the compiled loops: a batch (n, ...) of backend tensors at a time


def per_row(v: Any, like: Any) -> Any:
    """A per-sample tensor (n,) shaped to broadcast against ``like`` (n, ...); one with
    leading axes of known size (k, n) becomes (k, n, 1, ...)."""
    return ops.reshape(v, (*v.shape[:-1], -1) + (1,) * (len(like.shape) - 1))


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
