"""Minimum-norm attacks from fixed-radius ones: the first-order radius and the radius search.

`search` turns an attack at given per-input radii (`keras_lpc.robustness.attacks.pgd_run`,
`keras_lpc.robustness.apgd.apgd_run`) into a minimum-norm attack: per input, from
1.1 x `first_order_radius` (the linear model's distance ``L / ||grad L||_*``) the
radius doubles until the attack succeeds, shrinks by 0.8x until it fails, then is
bisected (`bisect_min_norm`, `STAGES` runs); the smallest adversarial perturbation
seen at any radius is kept. Each run is one compiled loop per batch on the device;
the search is a host loop over a few of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from keras_lpc.robustness._core import Scorer
from keras_lpc.robustness._losses import loss_grad, losses
from keras_lpc.robustness._norms import Tracker, dual_norm, lp_norm

#: Radius-search stages of the PGD / APGD minimum-norm attacks.
STAGES = 8


def first_order_radius(
    scorer: Scorer, x: np.ndarray, labels: np.ndarray, norm: str, fallback: float = 0.05
) -> np.ndarray:
    """The distance to the boundary of the margin's linearisation at ``x``, per input (N,).

    With the margin ``L = z_y - max_{j != y} z_j`` of the pre-softmax scores ``z``::

        r_n = L(x_n) / ||grad_x L(x_n)||_*      (||.||_* the dual norm: L2, or L1 for L-inf)

    in input units; ``fallback * ||x_n||`` where the gradient is zero or the value
    is not finite or not positive (an input already misclassified).

    Args:
        scorer: the model's `keras_lpc.robustness.Scorer`.
        x: inputs (N, ...).
        labels: their labels (N,).
        norm: ``"l2"`` or ``"linf"``.
        fallback: the radius, relative to ``||x_n||``, where the formula gives none.

    Returns:
        The radii (N,), float64.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import Scorer
    >>> from keras_lpc.robustness.radius import first_order_radius
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> x = np.array([[3.0, 4.0]])  # margin 2 x_0 = 6, gradient (2, 0)
    >>> print(first_order_radius(Scorer(model), x, np.array([0]), "l2"))
    [3.]
    """
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
    is bisected between the largest failing radius and that smallest size;
    ``stages`` runs in all. ``run`` returns a `Tracker` of the smallest
    adversarial perturbation it saw at the radii ``eps`` (N,).
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


def search(
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    norm: str,
    run: Callable[[np.ndarray, np.ndarray, np.ndarray], Tracker],
) -> np.ndarray:
    """The minimum-norm attack made of the fixed-radius ``run``: `bisect_min_norm` over
    `STAGES` runs from 1.1 x `first_order_radius`; the perturbations (N, ...), float64."""
    start = 1.1 * first_order_radius(scorer, x, labels, norm)
    return bisect_min_norm(run, x, norm, STAGES, start)


def minimum_norm(fixed: Callable[..., Tracker], name: str, **options: Any) -> Callable[..., Any]:
    """The ensemble attack ``name`` made of the fixed-radius attack ``fixed`` by `search`.

    ``fixed(scorer, x, labels, eps, *, norm, steps, clip, rng, **options)`` returns a
    `Tracker` at the radii ``eps`` (N,) (`keras_lpc.robustness.attacks.pgd_run`,
    `keras_lpc.robustness.apgd.apgd_run`); the result is an attack with the ensemble's
    signature ``attack(scorer, x, labels, *, norm, budget, clip, rng)``, ``budget`` the
    steps per radius, `STAGES` radii.
    """

    def attack(
        scorer: Scorer,
        x: np.ndarray,
        labels: np.ndarray,
        *,
        norm: str,
        budget: int,
        clip: tuple[float, float] | None,
        rng: np.random.Generator,
    ) -> np.ndarray:
        def run(xs: np.ndarray, idx: np.ndarray, eps: np.ndarray) -> Tracker:
            kwargs = {"norm": norm, "steps": budget, "clip": clip, "rng": rng, **options}
            return fixed(scorer, xs, labels[idx], eps, **kwargs)

        return search(scorer, x, labels, norm, run)

    attack.__name__ = attack.__qualname__ = f"{name.replace('-', '_')}_attack"
    attack.__doc__ = (
        f"The ensemble's {name!r} attack: `{fixed.__name__}` with ``budget`` steps per radius "
        "inside the radius search of `keras_lpc.robustness.radius.search`; perturbations (N, ...)."
    )
    return attack
