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
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from keras_lpc.robustness._minnorm import (
    COTANGENTS,
    Scorer,
    clip_delta,
    column,
    dual_norm,
    losses,
    lp_norm,
    predict,
    project,
    steepest,
)


def _both_cot(scores: Any, labels: Any) -> Any:
    return ops.concatenate(
        [COTANGENTS["soft-margin"](scores, labels), COTANGENTS["margin"](scores, labels)]
    )


def _grads(scorer: Scorer, x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and the gradients (2, N, ...) of the soft and the hard margin."""
    return scorer.vjp(x, _both_cot, labels.astype("int32"))


def _cosine(k: int, steps: int, start: float, end: float) -> float:
    return end + 0.5 * (start - end) * (1.0 + np.cos(np.pi * k / steps))


def fmn_attack(
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    norm: str,
    steps: int,
    clip: tuple[float, float] | None,
    gamma: tuple[float, float] = (0.05, 0.001),
    alpha: tuple[float, float] = (1.0, 0.01),
) -> np.ndarray:
    """The smallest adversarial perturbation FMN found per input (N, ...), zeros where none."""
    x = x.astype("float64")
    n = len(x)
    delta = np.zeros_like(x)
    eps = np.zeros(n)
    best_norm = np.full(n, np.inf)
    best = np.zeros_like(x)
    found = np.zeros(n, dtype=bool)
    for k in range(steps):
        scores, g2 = _grads(scorer, x + delta, labels)
        loss = losses(scores, labels, "margin")
        adv = np.argmax(scores, axis=1) != labels
        # before the first adversarial point: the soft margin's gradient (it does not
        # zig-zag where the runner-up class changes); after: the margin's own
        g = np.where(column(found | adv, x.ndim), g2[1], g2[0])
        size = lp_norm(delta, norm)
        better = adv & (size < best_norm)
        best_norm[better] = size[better]
        best[better] = delta[better]
        found |= adv
        gk = _cosine(k, steps, *gamma)
        gnorm = dual_norm(g, norm)
        with np.errstate(divide="ignore", invalid="ignore"):
            guess = np.where(gnorm > 0, (size + loss / gnorm) * (1.0 + gk), eps)
        eps = np.where(
            adv, np.minimum(eps * (1.0 - gk), best_norm), np.where(found, eps * (1.0 + gk), guess)
        )
        if k == 0:  # the step's scale: the first-order distance at x
            scale = np.where(np.isfinite(guess) & (guess > 0), guess, 0.05 * lp_norm(x, norm))
        step = _cosine(k, steps, *alpha) * scale
        delta = delta - step.reshape((-1,) + (1,) * (x.ndim - 1)) * steepest(g, norm)
        delta = clip_delta(x, project(delta, eps, norm), clip)
    adv = predict(scorer, x + delta) != labels
    size = lp_norm(delta, norm)
    better = adv & (size < best_norm)
    best[better] = delta[better]
    return best
