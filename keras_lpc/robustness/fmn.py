"""Fast Minimum-Norm attack (Pintor, Roli, Brendel & Biggio, NeurIPS 2021), L2 and L-inf.

FMN minimises the margin loss ``L = z_y - max_{j != y} z_j`` (adversarial when
``L < 0``) inside an eps-ball whose radius adapts at every step (until the
first adversarial point, the step follows the gradient of the smooth margin
``z_y - logsumexp_{j != y} z_j`` instead, which does not zig-zag where the
runner-up class changes)::

    not yet adversarial:  eps = (||delta|| + L / ||grad L||_*) (1 + gamma_k)  (first-order)
    adversarial at k:     eps = min(eps (1 - gamma_k), ||delta_best||)
    lost it again:        eps = eps (1 + gamma_k)
    delta <- P_eps(delta - alpha_k d_0 s(grad L)),  then into ``clip``

with ``s(g) = g / ||g||_2`` (L2) or ``sign(g)`` (L-inf), ``||.||_*`` the dual
norm, ``P_eps`` the projection onto the ball ``||delta|| <= eps`` (a real
projection: ``delta * min(1, eps / ||delta||)``), and ``gamma_k`` (0.05 ->
0.001) and ``alpha_k`` (1 -> 0.01) cosine-annealed over the steps. The step
is a fraction ``alpha_k`` of ``d_0 = L(x) / ||grad L(x)||_*``, the first-order
distance at the clean input (``0.05 ||x||`` where that is not finite), so the
attack does not depend on the input scale. The smallest adversarial ``delta``
seen is returned.

**Targets.** The untargeted margin follows the class closest by score, which
need not be the class whose region is closest (on a linear model, class ``j``
lies ``(z_y - z_j) / ||w_y - w_j||_*`` away). With a larger ``budget`` FMN
makes more runs of about `RUN` steps each: the first untargeted, the next ones
targeted at the other classes, nearest first by the first-order distance
``(z_y - z_t) / ||grad (z_y - z_t)||_*`` at ``x`` (exact on a linear model, so
there the second run finds the nearest class), with the margin
``L = z_y - z_t`` (adversarial for the run's step-size logic when ``z_t > z_y``;
every misclassified iterate counts for the result). The misclassification set
is the union over ``t`` of ``{z_t > z_y}``, so the smallest perturbation over
all ``C - 1`` targets is the untargeted minimum: on a linear model FMN with
``budget >= (C - 1) RUN`` is exact whatever the class ranking.

The whole loop runs on the device: one compiled ``keras.ops.fori_loop`` per
batch (`keras_lpc.backend`), all runs of a batch as rows of one loop, its state
(``delta``, ``eps``, the best ``delta`` and its norm, whether an adversarial
point was found, the step's scale) backend tensors in the model's input dtype,
the schedules computed from the step counter; each step is one forward pass and
one vector-Jacobian product (per input, of the soft, the hard or the targeted
margin, chosen from the scores).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc.robustness._core import Scorer, bounds, per_input
from keras_lpc.robustness._losses import COTANGENTS, loss_of
from keras_lpc.robustness._norms import (
    clip_delta,
    dual_norm,
    dual_norm_of,
    keep_smallest,
    lp_norm,
    norm_of,
    per_row,
    project,
    steepest,
)

#: Steps per run: a budget above it buys targeted runs (see the module's docstring).
RUN = 100


def _step_cot(scores: Any, aux: tuple[Any, Any, Any]) -> Any:
    # per input: the targeted margin's cotangent e_y - e_t where a target is set; else the
    # margin's once adversarial (now or before), else the soft margin's (it does not
    # zig-zag where the runner-up class changes); one product per step
    labels, found, target = aux
    hard = found | (ops.argmax(scores, axis=1) != labels)
    c = ops.shape(scores)[1]
    onto = ops.one_hot(ops.maximum(target, 0), c, dtype=scores.dtype)
    aimed = ops.one_hot(labels, c, dtype=scores.dtype) - onto
    free = ops.where(
        ops.reshape(hard, (1, -1, 1)),
        COTANGENTS["margin"](scores, labels),
        COTANGENTS["soft-margin"](scores, labels),
    )
    return ops.where(ops.reshape(target >= 0, (1, -1, 1)), ops.expand_dims(aimed, 0), free)


def _pairs_cot(scores: Any, labels: Any) -> Any:
    # e_y - e_j for every class j (C, n, C): the gradients of z_y - z_j (zero for j = y)
    c = ops.shape(scores)[1]
    return (
        ops.one_hot(labels, c, dtype=scores.dtype)[None] - ops.eye(c, dtype=scores.dtype)[:, None]
    )


def _nearest_classes(scorer: Scorer, x: np.ndarray, labels: np.ndarray, norm: str) -> np.ndarray:
    """The other classes (N, C - 1), nearest first by the first-order distance at ``x``,
    ``(z_y - z_j) / ||grad (z_y - z_j)||_*`` (exact on a linear model); one forward pass
    and C vector-Jacobian products."""
    scores, grads = scorer.vjp(x, _pairs_cot, labels.astype("int32"))
    n, c = scores.shape
    gap = scores[np.arange(n), labels][:, None] - scores  # (N, C)
    size = np.stack([dual_norm(g, norm) for g in grads], axis=1)  # (N, C)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(size > 0, gap / size, np.inf)
    estimate = np.where(np.isfinite(estimate), estimate, np.inf)
    estimate[np.arange(n), labels] = np.nan  # sorted last
    return np.argsort(estimate, axis=1, kind="stable")[:, : c - 1]


def _loop(fn: Callable[[Any], Any], norm: str, clipped: bool) -> Callable[..., tuple[Any]]:
    """FMN on backend tensors: ``(x, labels, target, gamma0, gamma1, alpha0, alpha1, steps, lo,
    hi) -> (best,)``, the smallest adversarial ``delta`` seen per input (zeros where none);
    ``target`` (n,) the class aimed at, -1 for none.

    ``gamma_k = gamma1 + (gamma0 - gamma1) (1 + cos(pi k / steps)) / 2``, and
    ``alpha_k`` alike; every setting is a tensor, so one compiled loop serves them all.
    """

    def run(
        x: Any, labels: Any, target: Any, g0: Any, g1: Any, a0: Any, a1: Any, steps: Any,
        lo: Any, hi: Any,
    ) -> tuple[Any]:  # fmt: skip
        bounds = (lo, hi) if clipped else None
        total = ops.cast(steps, x.dtype)

        def cosine(k: Any, start: Any, end: Any) -> Any:
            return end + 0.5 * (start - end) * (1.0 + ops.cos(np.pi * ops.cast(k, x.dtype) / total))

        def body(k: Any, state: tuple[Any, ...]) -> tuple[Any, ...]:
            delta, eps, best, best_norm, found, scale = state
            scores, g = backend.vjp(fn, x + delta, _step_cot, (labels, found, target))
            g = g[0]
            flipped = ops.argmax(scores, axis=1) != labels
            size = norm_of(delta, norm)
            best_norm, best = keep_smallest(delta, size, flipped, best_norm, best)
            # the run's own margin and success: against its target where it has one
            aimed = ops.take_along_axis(scores, ops.expand_dims(ops.maximum(target, 0), 1), axis=1)
            zy = ops.take_along_axis(scores, ops.expand_dims(labels, 1), axis=1)
            targeted = target >= 0
            loss = ops.where(targeted, (zy - aimed)[:, 0], loss_of(scores, labels, "margin"))
            adv = ops.where(targeted, loss < 0, flipped)
            found = found | adv
            gk = cosine(k, g0, g1)
            gnorm = dual_norm_of(g, norm)
            first = (size + loss / ops.where(gnorm > 0, gnorm, 1.0)) * (1.0 + gk)
            guess = ops.where(gnorm > 0, first, eps)
            eps = ops.where(
                adv,
                ops.minimum(eps * (1.0 - gk), best_norm),
                ops.where(found, eps * (1.0 + gk), guess),
            )
            # the step's scale, set at k = 0: the first-order distance at x
            start = ops.where(ops.isfinite(guess) & (guess > 0), guess, 0.05 * norm_of(x, norm))
            scale = ops.where(k == 0, start, scale)
            step = cosine(k, a0, a1) * scale
            delta = delta - per_row(step, x) * steepest(g, norm)
            delta = clip_delta(x, project(delta, eps, norm), bounds)
            return delta, eps, best, best_norm, found, scale

        n = ops.shape(x)[0]
        zeros = ops.zeros((n,), dtype=x.dtype)
        state = (
            ops.zeros_like(x),
            zeros,
            ops.zeros_like(x),
            ops.full((n,), np.inf, dtype=x.dtype),
            ops.zeros((n,), dtype="bool"),
            zeros,
        )
        delta, _, best, best_norm, _, _ = backend.fori_loop(0, steps, body, state)
        adv = ops.argmax(fn(x + delta), axis=1) != labels
        return (keep_smallest(delta, norm_of(delta, norm), adv, best_norm, best)[1],)

    return run


def fmn_attack(
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    norm: str,
    budget: int,
    clip: tuple[float, float] | None,
    rng: np.random.Generator | None = None,
    gamma: tuple[float, float] = (0.05, 0.001),
    alpha: tuple[float, float] = (1.0, 0.01),
) -> np.ndarray:
    """The smallest adversarial perturbation FMN found per input (N, ...), zeros where none.

    ``budget`` steps in all: ``r = min(C, max(1, round(budget / RUN)))`` runs of
    ``budget // r`` steps, the first untargeted, run ``k >= 1`` aimed at the ``k``-th
    nearest other class by the first-order distance at ``x`` (see the module's docstring); all runs of a batch
    in one compiled loop. Deterministic (``rng`` is not used). Computed in the
    model's input dtype (``scorer.dtype``) on the device, returned as float64.
    """
    clipped = clip is not None
    n = len(x)
    runs = max(1, round(budget / RUN))
    target = [np.full(n, -1)]
    if runs > 1:  # the other classes, nearest first by the first-order estimate
        ranked = _nearest_classes(scorer, x, labels, norm)
        runs = min(runs, ranked.shape[1] + 1)
        target += [ranked[:, k] for k in range(runs - 1)]
    target = np.concatenate(target)
    dtype = np.dtype(scorer.dtype).type
    steps = np.int32(budget // runs)
    settings = (*(dtype(v) for v in (*gamma, *alpha)), steps, *bounds(clip, dtype))
    xs, ls = per_input(scorer, np.tile(x, (runs,) + (1,) * (x.ndim - 1)), np.tile(labels, runs))
    (best,) = scorer.run(
        ("fmn", norm, clipped),
        lambda fn: _loop(fn, norm, clipped),
        [xs, ls, target.astype("int32")],
        settings,
    )
    best = best.astype("float64").reshape(runs, *x.shape)
    size = np.stack([np.where(lp_norm(b, norm) > 0, lp_norm(b, norm), np.inf) for b in best])
    return best[np.argmin(size, axis=0), np.arange(n)]
