"""Fast Minimum-Norm attack (Pintor, Roli, Brendel & Biggio, NeurIPS 2021), L2 and L-inf.

FMN minimises the margin loss ``L = z_y - max_{j != y} z_j`` (adversarial when
``L < 0``) inside an eps-ball whose radius adapts at every step::

    not yet adversarial:  eps = (||delta|| + L / ||grad L||_*) (1 + gamma_k)  (first-order)
    adversarial at k:     eps = min(eps (1 - gamma_k), ||delta_best||)
    lost it again:        eps = eps (1 + gamma_k)
    delta <- P_eps(delta - alpha_k eps s(grad L)),  then into ``clip``

with ``s(g) = g / ||g||_2`` (L2) or ``sign(g)`` (L-inf), ``||.||_*`` the dual
norm, ``P_eps`` the projection onto the ball ``||delta|| <= eps`` (a real
projection: ``delta * min(1, eps / ||delta||)``), and ``gamma_k`` (0.05 ->
0.001) and ``alpha_k`` (1 -> 0.01) cosine-annealed over the steps. The step is
a fraction ``alpha_k`` of the current radius, so the attack does not depend
on the input scale. The smallest adversarial ``delta`` seen is returned.
"""

from __future__ import annotations

import numpy as np

from keras_lpc.robustness._minnorm import (
    clip_delta,
    dual_norm,
    loss_grad,
    losses,
    lp_norm,
    predict,
    project,
    steepest,
)
from keras_lpc.robustness._scores import Scorer


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
        scores, g = loss_grad(scorer, x + delta, labels, "margin")
        loss = losses(scores, labels, "margin")
        adv = np.argmax(scores, axis=1) != labels
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
        step = _cosine(k, steps, *alpha) * eps
        delta = delta - step.reshape((-1,) + (1,) * (x.ndim - 1)) * steepest(g, norm)
        delta = clip_delta(x, project(delta, eps, norm), clip)
    adv = predict(scorer, x + delta) != labels
    size = lp_norm(delta, norm)
    better = adv & (size < best_norm)
    best[better] = delta[better]
    return best
