"""Minimum-norm attacks from fixed-radius ones: PGD at per-sample radii and the radius search.

`bisect_min_norm` turns an attack at given radii (`pgd_run`, `keras_lpc.robustness.apgd.apgd_run`)
into a minimum-norm attack: per input, from ``start`` (1.1 x `first_order_radius`, the
linear model's distance ``L / ||grad L||_*``) the radius doubles until the attack
succeeds, shrinks by 0.8x until it fails, then is bisected; the smallest adversarial
perturbation seen at any radius is kept. Each run is one compiled loop per batch on the
device; the search is a host loop over a few of them (`STAGES` in the ensemble).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc.robustness._minnorm import (
    COTANGENTS,
    Scorer,
    clip_delta,
    column,
    dual_norm,
    flat,
    keep_smallest,
    loss_grad,
    losses,
    lp_norm,
    norm_of,
    per_row,
    project,
    steepest,
)
from keras_lpc.robustness.attacks import _bounds


def draw_start(x: np.ndarray, eps: np.ndarray, norm: str, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random point of each ball ``||delta_n|| <= eps_n`` (N, ...), drawn by ``rng``."""
    e = column(eps, x.ndim)
    if norm == "linf":
        return rng.uniform(-1.0, 1.0, size=x.shape) * e
    u = rng.standard_normal(x.shape)
    u /= column(np.maximum(np.linalg.norm(flat(u), axis=1), 1e-30), x.ndim)
    return u * e * column(rng.uniform(size=len(x)) ** (1.0 / flat(x).shape[1]), x.ndim)


class Tracker:
    """The smallest-norm adversarial perturbation seen per input."""

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
        size = lp_norm(delta, self.norm)
        better = adv & (size < self.size)
        self.size[better] = size[better]
        self.delta[better] = delta[better]

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.size)


def per_input(
    scorer: Scorer, x: np.ndarray, labels: np.ndarray, eps: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The per-input arrays of `pgd_run` and `apgd_run` in the dtypes their loops take."""
    return (
        np.asarray(x, dtype=scorer.dtype),
        np.asarray(labels, dtype="int32"),
        np.asarray(eps, dtype=scorer.dtype),
        np.asarray(start, dtype=scorer.dtype),
    )


def _pgd_loop(fn: Callable[[Any], Any], norm: str, clipped: bool) -> Callable:
    """PGD-CE on backend tensors: ``(x, labels, eps, start, steps, lo, hi) -> (size, delta)``
    as `keras_lpc.robustness.apgd.apgd_run`'s loop, step ``2.5 eps / steps``."""

    def run(
        x: Any, labels: Any, eps: Any, start: Any, steps: Any, lo: Any, hi: Any
    ) -> tuple[Any, Any]:
        bounds = (lo, hi) if clipped else None
        a = per_row(2.5 * eps / ops.cast(steps, x.dtype), x)

        def body(k: Any, s: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
            delta, size, best = s
            scores, g = backend.vjp(fn, x + delta, COTANGENTS["ce"], labels)
            adv = ops.argmax(scores, axis=1) != labels
            size, best = keep_smallest(delta, norm_of(delta, norm), adv, size, best)
            delta = clip_delta(x, project(delta + a * steepest(g[0], norm), eps, norm), bounds)
            return delta, size, best

        inf = ops.full((ops.shape(x)[0],), np.inf, dtype=x.dtype)
        state = (clip_delta(x, start, bounds), inf, ops.zeros_like(x))
        delta, size, best = ops.fori_loop(0, steps, body, state)
        adv = ops.argmax(fn(x + delta), axis=1) != labels
        return keep_smallest(delta, norm_of(delta, norm), adv, size, best)

    return run


def pgd_run(
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    eps: np.ndarray,
    *,
    norm: str,
    steps: int,
    clip: tuple[float, float] | None,
    rng: np.random.Generator,
) -> Tracker:
    """PGD on the cross-entropy at per-sample radii ``eps`` (N,), every iterate checked for a flip.

    As in `keras_lpc.robustness.pgd_accuracy`: from a random point of the ball,
    ``delta <- clip(P_eps(delta + a s(grad CE)))`` with ``a = 2.5 eps / steps``,
    ``s`` the steepest direction (``g / ||g||_2`` or ``sign(g)``) and ``P_eps`` the
    projection onto the ball. One compiled loop per batch on the device (the model's
    input dtype); the random start is drawn from ``rng`` on the host.
    """
    x = np.asarray(x)
    start = draw_start(x, eps, norm, rng)
    clipped = clip is not None
    size, delta = scorer.run(
        ("pgd", norm, clipped),
        lambda fn: _pgd_loop(fn, norm, clipped),
        per_input(scorer, x, labels, eps, start),
        (np.int32(steps), *_bounds(clip, np.dtype(scorer.dtype).type)),
    )
    return Tracker.of(size, delta, norm)


def first_order_radius(
    scorer: Scorer, x: np.ndarray, labels: np.ndarray, norm: str, fallback: float = 0.05
) -> np.ndarray:
    """``L / ||grad L||_*`` for the margin loss (the linear model's distance), per input;
    ``fallback * ||x||`` where the gradient is zero or the value is not finite."""
    scores, g = loss_grad(scorer, x, labels, "margin")
    loss = losses(scores, labels, "margin")
    gn = dual_norm(g, norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        guess = loss / gn
    ok = np.isfinite(guess) & (guess > 0)
    return np.where(ok, guess, fallback * np.maximum(lp_norm(x, norm), 1e-12))


def bisect_min_norm(
    run: Callable[[np.ndarray, np.ndarray, np.ndarray], Tracker],
    x: np.ndarray,
    norm: str,
    stages: int,
    start: np.ndarray,
) -> np.ndarray:
    """The smallest adversarial perturbation found by ``run(x, idx, eps)`` over a radius search.

    Per input, ``eps`` starts at ``start`` and doubles until ``run`` succeeds,
    shrinks by 0.8x from the smallest perturbation found until it fails, then
    is bisected between the largest failing radius and that smallest size.
    """
    x = x.astype("float64")
    n = len(x)
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    eps = np.asarray(start, dtype="float64")
    best = Tracker(x, norm)
    idx = np.arange(n)
    for _ in range(stages):
        t = run(x, idx, eps)
        best.see(t.delta, t.found)
        hi = np.minimum(hi, np.where(t.found, t.size, np.inf))
        lo = np.where(t.found, lo, np.maximum(lo, eps))
        down = np.where(lo > 0, 0.5 * (lo + hi), 0.8 * hi)
        eps = np.where(np.isfinite(hi), down, 2.0 * eps)
    return best.delta
