"""APGD-CE / APGD-DLR (Croce & Hein, ICML 2020), PGD, and their minimum-norm form by bisection.

`apgd_accuracy` is the accuracy under Auto-PGD at a fixed radius. Inside
`minimal_perturbation`, APGD and PGD become minimum-norm attacks through a
per-sample search over the radius: from the first-order guess ``L / ||grad L||_*``
the radius doubles until the attack succeeds, then is bisected; the smallest verified adversarial perturbation
seen at any radius is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from keras_lpc._validation import check_choice, check_int
from keras_lpc.robustness._minnorm import (
    NORMS,
    Scorer,
    check_clip,
    clip_delta_np,
    column,
    dual_norm,
    flat,
    loss_grad,
    losses,
    lp_norm,
    predict,
    project_np,
    steepest_np,
)
from keras_lpc.robustness.attacks import _eps_list, _result, _setup

LOSSES = ("ce", "dlr")


def _checkpoints(steps: int) -> set[int]:
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return {int(np.ceil(q * steps)) for q in p[1:] if np.ceil(q * steps) < steps}


def _random_start(x: np.ndarray, eps: np.ndarray, norm: str, rng: np.random.Generator):
    e = column(eps, x.ndim)
    if norm == "linf":
        return rng.uniform(-1.0, 1.0, size=x.shape) * e
    u = rng.standard_normal(x.shape)
    u /= column(np.maximum(np.linalg.norm(flat(u), axis=1), 1e-30), x.ndim)
    return u * e * column(rng.uniform(size=len(x)) ** (1.0 / flat(x).shape[1]), x.ndim)


class _Tracker:
    """The smallest-norm adversarial perturbation seen per input."""

    def __init__(self, x: np.ndarray, norm: str) -> None:
        self.norm = norm
        self.size = np.full(len(x), np.inf)
        self.delta = np.zeros_like(x)

    def see(self, delta: np.ndarray, adv: np.ndarray) -> None:
        size = lp_norm(delta, self.norm)
        better = adv & (size < self.size)
        self.size[better] = size[better]
        self.delta[better] = delta[better]

    @property
    def found(self) -> np.ndarray:
        return np.isfinite(self.size)


def apgd_run(
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    eps: np.ndarray,
    *,
    norm: str,
    steps: int,
    loss: str,
    clip: tuple[float, float] | None,
    rng: np.random.Generator,
    rho: float = 0.75,
    momentum: float = 0.75,
    random_start: bool = False,
) -> _Tracker:
    """Auto-PGD at per-sample radii ``eps`` (N,); every iterate is checked for a flip.

    ``x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))``, ``z = P(x_k + eta s(g))``,
    ``a = momentum`` (1 at the first step), ``eta = 2 eps`` halved at the checkpoints
    where fewer than ``rho`` of the steps since the last one raised the loss, or
    where neither eta nor the best loss changed; each halving restarts from the
    best point.
    """
    x = x.astype("float64")
    track = _Tracker(x, norm)
    marks = _checkpoints(steps)
    eta = 2.0 * eps
    delta = _random_start(x, eps, norm, rng) if random_start else np.zeros_like(x)
    delta = clip_delta_np(x, delta, clip)
    prev = delta
    f_best = np.full(len(x), -np.inf)
    d_best, g_best = delta.copy(), np.zeros_like(x)
    f_prev = None
    raised = np.zeros(len(x))
    last_mark, f_best_mark, eta_mark = 0, f_best.copy(), eta.copy()
    ball = lambda d: clip_delta_np(x, project_np(d, eps, norm), clip)  # noqa: E731
    for k in range(steps):
        scores, g = loss_grad(scorer, x + delta, labels, loss)
        f = losses(scores, labels, loss)
        track.see(delta, np.argmax(scores, axis=1) != labels)
        if f_prev is not None:
            raised += f > f_prev
        f_prev = f
        up = f > f_best
        f_best = np.where(up, f, f_best)
        d_best[up], g_best[up] = delta[up], g[up]
        if k in marks:
            halve = (raised < rho * (k - last_mark)) | ((eta == eta_mark) & (f_best <= f_best_mark))
            eta_mark, f_best_mark = eta.copy(), f_best.copy()
            eta = np.where(halve, eta / 2.0, eta)
            delta = np.where(column(halve, x.ndim), d_best, delta)
            g = np.where(column(halve, x.ndim), g_best, g)
            prev = np.where(column(halve, x.ndim), d_best, prev)
            raised[:] = 0
            last_mark = k
        z = ball(delta + column(eta, x.ndim) * steepest_np(g, norm))
        a = 1.0 if k == 0 else momentum
        delta, prev = ball(delta + a * (z - delta) + (1.0 - a) * (delta - prev)), delta
    track.see(delta, predict(scorer, x + delta) != labels)
    return track


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
) -> _Tracker:
    """PGD on the cross-entropy as in `pgd_accuracy` (random start, step ``2.5 eps / steps``),
    at per-sample radii, every iterate checked for a flip."""
    x = x.astype("float64")
    track = _Tracker(x, norm)
    a = column(2.5 * eps / steps, x.ndim)
    delta = clip_delta_np(x, _random_start(x, eps, norm, rng), clip)
    for _ in range(steps):
        scores, g = loss_grad(scorer, x + delta, labels, "ce")
        track.see(delta, np.argmax(scores, axis=1) != labels)
        delta = clip_delta_np(x, project_np(delta + a * steepest_np(g, norm), eps, norm), clip)
    track.see(delta, predict(scorer, x + delta) != labels)
    return track


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
    run: Callable[[np.ndarray, np.ndarray, np.ndarray], _Tracker],
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
    best = _Tracker(x, norm)
    idx = np.arange(n)
    for _ in range(stages):
        t = run(x, idx, eps)
        best.see(t.delta, t.found)
        hi = np.minimum(hi, np.where(t.found, t.size, np.inf))
        lo = np.where(t.found, lo, np.maximum(lo, eps))
        down = np.where(lo > 0, 0.5 * (lo + hi), 0.8 * hi)
        eps = np.where(np.isfinite(hi), down, 2.0 * eps)
    return best.delta


def apgd_accuracy(
    model: Any,
    x: Any,
    y: Any,
    eps: float | list[float],
    *,
    loss: str = "ce",
    norm: str = "linf",
    steps: int = 100,
    clip: tuple[float, float] | None = None,
    batch_size: int = 256,
    random_start: bool = False,
    seed: int = 0,
    outputs: str = "auto",
) -> float | np.ndarray:
    """Accuracy under Auto-PGD (Croce & Hein, 2020) for one or several ``eps``.

    From ``x`` (or a random point of the eps-ball), ``steps`` momentum steps ascend the
    loss, with step size ``eta`` starting at ``2 eps`` and halved (restarting
    from the best point) at checkpoints ``w_j = ceil(p_j steps)``,
    ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``,
    when fewer than 75 % of the steps since the last checkpoint raised the loss
    or when neither eta nor the best loss changed. Losses on the pre-softmax
    scores ``z``: ``"ce"`` the cross-entropy, ``"dlr"``
    ``-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12)`` (``pi`` sorts the
    scores in decreasing order; with C = 2 the ratio is constant and
    ``-(z_y - z_m)`` is used).
    An input counts as broken when any iterate is misclassified.

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2.
        x: inputs, a batch matching the model's input shape.
        y: labels (N,) or one-hot rows.
        eps: a radius ``>= 0`` (input units, in ``norm``) or a list of them.
        loss: ``"ce"`` or ``"dlr"``.
        norm: ``"linf"`` or ``"l2"``.
        steps: iterations, ``>= 1``.
        clip: optional ``(lo, hi)`` range of valid inputs.
        batch_size: inputs processed together.
        random_start: start from a uniformly random point of the ball instead of
            ``x`` (off by default: on small models the random start loses inputs
            that the start at ``x`` breaks).
        seed: seed of the random start.
        outputs: ``"auto"``, ``"logits"`` or ``"probabilities"``: what the model
            returns (see `keras_lpc.robustness.deepfool`).

    Returns:
        The accuracy (a float in [0, 1]), or an array of them, one per eps.

    Raises:
        ValueError: negative ``eps``, ``steps < 1``, unknown ``loss`` or ``norm``,
            bad ``x`` / ``y``.
        TypeError: non-numeric arguments.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import apgd_accuracy
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> x, y = np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([0, 0])
    >>> print(apgd_accuracy(model, x, y, [0.5, 2.0, 4.0], steps=20))  # distances 1 and 3
    [1.  0.5 0. ]
    """
    values, scalar = _eps_list(eps)
    loss = check_choice("loss", loss, LOSSES)
    norm = check_choice("norm", norm, NORMS)
    steps = check_int("steps", steps, minimum=1)
    clip = check_clip(clip)
    x, y, _ = _setup(model, x, y, batch_size, outputs)
    scorer = Scorer(model, batch_size, outputs)
    accs = []
    for e in values:
        rng = np.random.default_rng(seed)
        t = apgd_run(
            scorer,
            x,
            y,
            np.full(len(x), e),
            norm=norm,
            steps=steps,
            loss=loss,
            clip=clip,
            rng=rng,
            random_start=bool(random_start),
        )
        accs.append(float(np.mean(~t.found)))
    return _result(accs, scalar)
