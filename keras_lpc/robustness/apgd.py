"""APGD-CE / APGD-DLR (Croce & Hein, ICML 2020) at fixed radii, on the device.

`apgd_accuracy` is the accuracy under Auto-PGD at a fixed radius. Inside
`minimal_perturbation`, `apgd_run` at per-sample radii becomes a minimum-norm
attack (`apgd_ce_attack`, `apgd_dlr_attack`) through the radius search of
`keras_lpc.robustness.radius`.

Each run is one compiled ``keras.ops.fori_loop`` per batch on the device
(`keras_lpc.backend`), its state backend tensors in the model's input dtype
and the checkpoints a boolean mask indexed by the step counter; only the
smallest adversarial perturbation per input and its norm come back. The
random start is drawn on the host (NumPy, seeded) and passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc._validation import check_choice, check_int
from keras_lpc.robustness._checks import check_clip, check_eps, one_or_many, prepare
from keras_lpc.robustness._core import Scorer, bounds, per_input
from keras_lpc.robustness._losses import COTANGENTS, loss_of
from keras_lpc.robustness._norms import (
    NORMS,
    Tracker,
    clip_delta,
    draw_start,
    keep_smallest,
    norm_of,
    per_row,
    project,
    steepest,
)
from keras_lpc.robustness.radius import minimum_norm

LOSSES = ("ce", "dlr")


def _checkpoints(steps: int) -> np.ndarray:
    """The checkpoint mask (steps,): True at ``w_j = ceil(p_j steps) < steps``, j >= 1."""
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    marks = np.zeros(steps, dtype=bool)
    for q in p[1:]:
        if np.ceil(q * steps) < steps:
            marks[int(np.ceil(q * steps))] = True
    return marks


def _cotangent(scores: Any, aux: tuple[Any, Any]) -> Any:
    labels, dlr = aux  # the loss is a setting, so that APGD-CE and APGD-DLR share one loop
    return ops.where(dlr, COTANGENTS["dlr"](scores, labels), COTANGENTS["ce"](scores, labels))


def _checkpoint(
    s: dict[str, Any], k: Any, mark: Any, raised: Any, delta: Any, g: Any, rho: Any
) -> tuple[Any, Any, Any]:
    """APGD's checkpoint at step ``k`` (a no-op unless ``mark``): updates ``s`` in place and
    returns ``(delta, g, prev)``, restarted from the best point where eta is halved.

    Eta is halved where fewer than ``rho`` of the steps since the last checkpoint
    raised the loss, or where neither eta nor the best loss changed.
    """
    kf, eta = ops.cast(k, delta.dtype), s["eta"]
    stalled = raised < rho * (kf - s["last"])
    halve = mark & (stalled | ((eta == s["eta_mark"]) & (s["f_best"] <= s["f_mark"])))
    s["eta_mark"] = ops.where(mark, eta, s["eta_mark"])
    s["f_mark"] = ops.where(mark, s["f_best"], s["f_mark"])
    s["eta"] = ops.where(halve, eta / 2.0, eta)
    back = per_row(halve, delta)
    s["raised"] = ops.where(mark, 0.0, raised)
    s["last"] = ops.where(mark, kf, s["last"])
    return (
        ops.where(back, s["d_best"], delta),
        ops.where(back, s["g_best"], g),
        ops.where(back, s["d_best"], s["prev"]),
    )


def _apgd_loop(fn: Callable[[Any], Any], norm: str, clipped: bool) -> Callable:
    """APGD on backend tensors: ``(x, labels, eps, start, rho, momentum, marks, dlr, lo, hi)
    -> (size, delta)``, the smallest adversarial perturbation seen per input and its norm
    (inf and zeros where none); ``marks`` (steps,) flags the checkpoints and ``dlr`` (a
    boolean) picks the DLR loss over the cross-entropy."""

    def run(
        x: Any,
        labels: Any,
        eps: Any,
        start: Any,
        rho: Any,
        momentum: Any,
        marks: Any,
        dlr: Any,
        lo: Any,
        hi: Any,
    ) -> tuple[Any, Any]:
        bounds = (lo, hi) if clipped else None

        def ball(d: Any) -> Any:
            return clip_delta(x, project(d, eps, norm), bounds)

        def body(k: Any, s: dict[str, Any]) -> dict[str, Any]:
            s = dict(s)
            delta = s["delta"]
            scores, g = backend.vjp(fn, x + delta, _cotangent, (labels, dlr))
            f = ops.where(dlr, loss_of(scores, labels, "dlr"), loss_of(scores, labels, "ce"))
            g = g[0]
            adv = ops.argmax(scores, axis=1) != labels
            s["size"], s["best"] = keep_smallest(
                delta, norm_of(delta, norm), adv, s["size"], s["best"]
            )
            raised = s["raised"] + ops.cast(f > s["f_prev"], x.dtype)  # f_prev = inf at k = 0
            up = f > s["f_best"]
            s["f_best"] = ops.where(up, f, s["f_best"])
            s["d_best"] = ops.where(per_row(up, x), delta, s["d_best"])
            s["g_best"] = ops.where(per_row(up, x), g, s["g_best"])
            delta, g, prev = _checkpoint(s, k, ops.take(marks, k), raised, delta, g, rho)
            z = ball(delta + per_row(s["eta"], x) * steepest(g, norm))
            a = ops.where(k == 0, 1.0, momentum)
            s["delta"] = ball(delta + a * (z - delta) + (1.0 - a) * (delta - prev))
            s["prev"], s["f_prev"] = delta, f
            return s

        n = ops.shape(x)[0]
        delta = clip_delta(x, start, bounds)
        inf = ops.full((n,), np.inf, dtype=x.dtype)
        state = {
            "delta": delta,
            "prev": delta,
            "f_prev": inf,
            "f_best": -inf,
            "d_best": delta,
            "g_best": ops.zeros_like(x),
            "raised": ops.zeros((n,), dtype=x.dtype),
            "last": ops.zeros((), dtype=x.dtype),
            "f_mark": -inf,
            "eta": 2.0 * eps,
            "eta_mark": 2.0 * eps,
            "size": inf,
            "best": ops.zeros_like(x),
        }
        s = backend.fori_loop(0, ops.shape(marks)[0], body, state)
        adv = ops.argmax(fn(x + s["delta"]), axis=1) != labels
        return keep_smallest(s["delta"], norm_of(s["delta"], norm), adv, s["size"], s["best"])

    return run


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
) -> Tracker:
    """Auto-PGD at per-sample radii ``eps`` (N,); every iterate is checked for a flip.

    ``x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))``, ``z = P(x_k + eta s(g))``,
    ``a = momentum`` (1 at the first step), ``eta = 2 eps`` halved at the checkpoints
    where fewer than ``rho`` of the steps since the last one raised the loss, or
    where neither eta nor the best loss changed; each halving restarts from the
    best point. Runs on the device in the model's input dtype (one compiled loop
    per batch); the random start is drawn from ``rng`` on the host.
    """
    x = np.asarray(x)
    start = draw_start(x, eps, norm, rng) if random_start else np.zeros(x.shape)
    clipped = clip is not None
    dtype = np.dtype(scorer.dtype).type
    size, delta = scorer.run(
        ("apgd", norm, clipped),
        lambda fn: _apgd_loop(fn, norm, clipped),
        per_input(scorer, x, labels, eps, start),
        (dtype(rho), dtype(momentum), _checkpoints(steps), np.bool_(loss == "dlr"))
        + bounds(clip, scorer.dtype),
    )
    return Tracker.of(size, delta, norm)


#: The ensemble's ``"apgd-ce"`` and ``"apgd-dlr"`` attacks: `apgd_run` inside the radius search.
apgd_ce_attack = minimum_norm(apgd_run, "apgd-ce", loss="ce")
apgd_dlr_attack = minimum_norm(apgd_run, "apgd-dlr", loss="dlr")


def apgd_accuracy(
    model: Any,
    x: Any,
    y: Any,
    eps: float,
    *,
    loss: str = "ce",
    norm: str = "linf",
    steps: int = 100,
    clip: tuple[float, float] | None = None,
    batch_size: int = 256,
    random_start: bool = False,
    seed: int = 0,
    outputs: str = "auto",
) -> float:
    """Accuracy under Auto-PGD (Croce & Hein, 2020).

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
        eps: the radius, a number ``>= 0`` (input units, in ``norm``); a sequence of
            them is deprecated: use `keras_lpc.robustness.accuracy_curve`.
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
        The accuracy, a float in [0, 1] (for a deprecated sequence of budgets,
        a float64 array of them).

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
    >>> apgd_accuracy(model, x, y, 2.0, steps=20)  # L-inf distances 1 and 3
    0.5
    """
    values, scalar = check_eps(eps, "apgd_accuracy")
    loss = check_choice("loss", loss, LOSSES)
    norm = check_choice("norm", norm, NORMS)
    steps = check_int("steps", steps, minimum=1)
    clip = check_clip(clip)
    scorer, x, y, _ = prepare(model, x, y, batch_size, outputs, clip)
    accs = []
    for e in values:
        t = apgd_run(
            scorer,
            x,
            y,
            np.full(len(x), e),
            norm=norm,
            steps=steps,
            loss=loss,
            clip=clip,
            rng=np.random.default_rng(seed),
            random_start=bool(random_start),
        )
        accs.append(float(np.mean(~t.found)))
    return one_or_many(accs, scalar)
