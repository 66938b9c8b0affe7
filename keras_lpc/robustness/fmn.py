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

The whole loop runs on the device: one compiled ``keras.ops.fori_loop`` per
batch (`keras_lpc.backend`), its state (``delta``, ``eps``, the best
``delta`` and its norm, whether an adversarial point was found, the step's
scale) backend tensors in the model's input dtype, the schedules computed from
the step counter; each step is one forward pass and one vector-Jacobian
product (per input, of the soft or of the hard margin, chosen from the scores).
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
    dual_norm_of,
    keep_smallest,
    norm_of,
    per_row,
    project,
    steepest,
)


def _step_cot(scores: Any, aux: tuple[Any, Any]) -> Any:
    # per input: the margin's cotangent once adversarial (now or before), else the soft
    # margin's (it does not zig-zag where the runner-up class changes); one product per step
    labels, found = aux
    hard = found | (ops.argmax(scores, axis=1) != labels)
    return ops.where(
        ops.reshape(hard, (1, -1, 1)),
        COTANGENTS["margin"](scores, labels),
        COTANGENTS["soft-margin"](scores, labels),
    )


def _loop(fn: Callable[[Any], Any], norm: str, clipped: bool) -> Callable[..., tuple[Any]]:
    """FMN on backend tensors: ``(x, labels, gamma0, gamma1, alpha0, alpha1, steps, lo, hi)
    -> (best,)``, the smallest adversarial ``delta`` seen per input (zeros where none).

    ``gamma_k = gamma1 + (gamma0 - gamma1) (1 + cos(pi k / steps)) / 2``, and
    ``alpha_k`` alike; every setting is a tensor, so one compiled loop serves them all.
    """

    def run(
        x: Any, labels: Any, g0: Any, g1: Any, a0: Any, a1: Any, steps: Any, lo: Any, hi: Any
    ) -> tuple[Any]:
        bounds = (lo, hi) if clipped else None
        total = ops.cast(steps, x.dtype)

        def cosine(k: Any, start: Any, end: Any) -> Any:
            return end + 0.5 * (start - end) * (1.0 + ops.cos(np.pi * ops.cast(k, x.dtype) / total))

        def body(k: Any, state: tuple[Any, ...]) -> tuple[Any, ...]:
            delta, eps, best, best_norm, found, scale = state
            scores, g = backend.vjp(fn, x + delta, _step_cot, (labels, found))
            g = g[0]
            loss = loss_of(scores, labels, "margin")
            adv = ops.argmax(scores, axis=1) != labels
            size = norm_of(delta, norm)
            best_norm, best = keep_smallest(delta, size, adv, best_norm, best)
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
        delta, _, best, best_norm, _, _ = ops.fori_loop(0, steps, body, state)
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

    ``budget`` steps; deterministic (``rng`` is not used). Computed in the model's
    input dtype (``scorer.dtype``) on the device, returned as float64.
    """
    clipped = clip is not None
    dtype = np.dtype(scorer.dtype).type
    settings = (*(dtype(v) for v in (*gamma, *alpha)), np.int32(budget), *bounds(clip, dtype))
    (best,) = scorer.run(
        ("fmn", norm, clipped),
        lambda fn: _loop(fn, norm, clipped),
        per_input(scorer, x, labels),
        settings,
    )
    return best.astype("float64")
