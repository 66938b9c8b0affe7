"""FGSM and PGD on the cross-entropy of a model's logits: accuracies and the PGD attack.

One PGD loop (`pgd_run`'s) serves everything here: `pgd_accuracy` is its
final iterate, `fgsm_accuracy` one step of it from ``x`` with step ``eps``,
and the ensemble's ``"pgd"`` attack (`pgd_attack`) its smallest adversarial
iterate inside a radius search (`keras_lpc.robustness.radius`). The loop runs
on the device, one compiled function per batch (`Scorer.run`); only the
per-input results come back to the host.

The accuracy functions return one float for one ``eps``; `accuracy_curve`
returns one accuracy per eps (a sequence of eps passed to an accuracy
function still works, deprecated).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc._validation import check_choice, check_float, check_int
from keras_lpc.robustness._checks import Curve, check_clip, check_eps, one_or_many, prepare
from keras_lpc.robustness._core import Scorer, bounds, per_input
from keras_lpc.robustness._losses import COTANGENTS
from keras_lpc.robustness._norms import (
    Tracker,
    clip_delta,
    draw_start,
    keep_smallest,
    norm_of,
    per_row,
    project,
    steepest,
)
from keras_lpc.robustness.apgd import apgd_accuracy
from keras_lpc.robustness.radius import minimum_norm


def _pgd_loop(fn: Callable[[Any], Any], norm: str, clipped: bool) -> Callable:
    """PGD-CE on backend tensors: ``(x, labels, eps, start, steps, step_size, lo, hi) ->
    (size, best, adv)``: the smallest adversarial iterate per input and its norm (inf and
    zeros where none), and whether the final iterate is adversarial. The step is
    ``step_size``, or ``2.5 eps / steps`` where ``step_size < 0``."""

    def run(
        x: Any, labels: Any, eps: Any, start: Any, steps: Any, step_size: Any, lo: Any, hi: Any
    ) -> tuple[Any, Any, Any]:
        clip = (lo, hi) if clipped else None
        a = per_row(ops.where(step_size >= 0, step_size, 2.5 * eps / ops.cast(steps, x.dtype)), x)

        def body(k: Any, s: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
            delta, size, best = s
            scores, g = backend.vjp(fn, x + delta, COTANGENTS["ce"], labels)
            adv = ops.argmax(scores, axis=1) != labels
            size, best = keep_smallest(delta, norm_of(delta, norm), adv, size, best)
            delta = clip_delta(x, project(delta + a * steepest(g[0], norm), eps, norm), clip)
            return delta, size, best

        inf = ops.full((ops.shape(x)[0],), np.inf, dtype=x.dtype)
        state = (clip_delta(x, start, clip), inf, ops.zeros_like(x))
        delta, size, best = backend.fori_loop(0, steps, body, state)
        adv = ops.argmax(fn(x + delta), axis=1) != labels
        return (*keep_smallest(delta, norm_of(delta, norm), adv, size, best), adv)

    return run


def _pgd(
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    eps: np.ndarray,
    start: np.ndarray,
    *,
    norm: str,
    steps: int,
    step_size: float,
    clip: tuple[float, float] | None,
) -> list[np.ndarray]:
    """`_pgd_loop` on the inputs, in the model's input dtype: ``[size, best, adv]``."""
    dtype = np.dtype(scorer.dtype).type
    clipped = clip is not None
    return scorer.run(
        ("pgd", norm, clipped),
        lambda fn: _pgd_loop(fn, norm, clipped),
        per_input(scorer, x, labels, eps, start),
        (np.int32(steps), dtype(step_size), *bounds(clip, scorer.dtype)),
    )


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

    As in `pgd_accuracy`: from a random point of the ball (`draw_start`, from
    ``rng`` on the host), ``delta <- clip(P_eps(delta + a s(grad CE)))`` with
    ``a = 2.5 eps / steps``, ``s`` the steepest direction (``g / ||g||_2`` or
    ``sign(g)``) and ``P_eps`` the projection onto the ball. Returns a `Tracker`
    of the smallest adversarial iterate per input.
    """
    x = np.asarray(x)
    start = draw_start(x, eps, norm, rng)
    size, delta, _ = _pgd(
        scorer, x, labels, eps, start, norm=norm, steps=steps, step_size=-1.0, clip=clip
    )
    return Tracker.of(size, delta, norm)


#: The ensemble's ``"pgd"`` attack: `pgd_run` inside the radius search.
pgd_attack = minimum_norm(pgd_run, "pgd")


def fgsm_accuracy(
    model: Any,
    x: Any,
    y: Any,
    eps: float,
    *,
    clip: tuple[float, float] | None = None,
    batch_size: int = 256,
    outputs: str = "auto",
) -> float:
    """Accuracy under the fast gradient sign attack.

    ``x_adv = x + eps * sign(grad_x CE(softmax(f(x)), y))`` (L-inf budget
    ``eps`` in input units, clipped to ``clip`` if given), with ``f`` the
    pre-softmax scores; returns ``mean(argmax f(x_adv) == y)``. This is one
    step of `pgd_accuracy`'s loop, from ``x`` with step ``eps``.

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2.
        x: inputs, a batch matching the model's input shape.
        y: labels (N,) or one-hot rows (positional or keyword); ``None`` uses the
            clean predictions.
        eps: the budget, a number ``>= 0`` (a sequence of them is deprecated:
            use `accuracy_curve`).
        clip: optional ``(lo, hi)`` range of valid inputs.
        batch_size: inputs processed together (padded to a power of two).
        outputs: ``"auto"``, ``"logits"`` or ``"probabilities"``: what the model
            returns (see `keras_lpc.robustness.deepfool`).

    Returns:
        The accuracy, a float in [0, 1] (for a deprecated sequence of budgets,
        a float64 array of them).

    Raises:
        ValueError: negative or non-finite ``eps``, bad ``x`` / ``y``.
        TypeError: non-numeric ``eps``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import fgsm_accuracy
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> x, y = np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([0, 0])
    >>> fgsm_accuracy(model, x, y, 2.0)  # margins 2 and 6, the step costs 2 eps
    0.5
    """
    values, scalar = check_eps(eps, "fgsm_accuracy")
    clip = check_clip(clip)
    scorer, x, y, _ = prepare(model, x, y, batch_size, outputs, clip)
    zeros = np.zeros(x.shape)
    accs = []
    for e in values:
        eps_n = np.full(len(x), e)
        *_, adv = _pgd(scorer, x, y, eps_n, zeros, norm="linf", steps=1, step_size=e, clip=clip)
        accs.append(float(np.mean(~adv)))
    return one_or_many(accs, scalar)


def pgd_accuracy(
    model: Any,
    x: Any,
    y: Any,
    eps: float,
    *,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "linf",
    random_start: bool = True,
    clip: tuple[float, float] | None = None,
    batch_size: int = 256,
    seed: int = 0,
    outputs: str = "auto",
) -> float:
    """Accuracy under projected gradient descent (Madry et al.).

    Starting from ``x`` (or a uniform random point of the eps-ball, clipped to
    ``clip``), each of ``steps`` steps ascends the cross-entropy of the
    pre-softmax scores and projects back onto the ball::

        linf: x <- x0 + clip(x + a * sign(g) - x0, -eps, eps)
        l2:   x <- x0 + P(x + a * g / ||g||_2 - x0),  P(d) = d * min(1, eps / ||d||_2)

    with ``a = step_size`` (default ``2.5 * eps / steps``), then clipped to
    ``clip`` if given. Returns ``mean(argmax f(x_adv) == y)`` at the last iterate.

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2.
        x: inputs, a batch matching the model's input shape.
        y: labels (N,) or one-hot rows (positional or keyword); ``None`` uses the
            clean predictions.
        eps: the budget, a number ``>= 0`` (input units, in ``norm``); a sequence
            of them is deprecated: use `accuracy_curve`.
        steps: number of gradient steps, ``>= 1``.
        step_size: step length ``> 0``; default ``2.5 * eps / steps``.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start from a uniformly random point of the ball.
        clip: optional ``(lo, hi)`` range of valid inputs.
        batch_size: inputs processed together (padded to a power of two).
        seed: seed of the random start.
        outputs: ``"auto"``, ``"logits"`` or ``"probabilities"``: what the model
            returns (see `keras_lpc.robustness.deepfool`).

    Returns:
        The accuracy, a float in [0, 1] (for a deprecated sequence of budgets,
        a float64 array of them).

    Raises:
        ValueError: negative ``eps``, ``steps < 1``, ``step_size <= 0``,
            unknown ``norm``, bad ``x`` / ``y``.
        TypeError: non-numeric arguments.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import pgd_accuracy
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> x, y = np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([0, 0])
    >>> pgd_accuracy(model, x, y, 2.0, norm="l2")  # distances 1 and 3
    0.5
    """
    values, scalar = check_eps(eps, "pgd_accuracy")
    steps = check_int("steps", steps, minimum=1)
    if step_size is not None:
        step_size = check_float("step_size", step_size, strictly_positive=True)
    norm = check_choice("norm", norm, ("linf", "l2"))
    clip = check_clip(clip)
    scorer, x, y, scores = prepare(model, x, y, batch_size, outputs, clip)
    rng = np.random.default_rng(seed)
    accs = []
    for e in values:
        if e == 0:  # no budget: the clean accuracy
            accs.append(float(np.mean(np.argmax(scores, axis=1) == y)))
            continue
        eps_n = np.full(len(x), e)
        start = draw_start(x, eps_n, norm, rng) if random_start else np.zeros(x.shape)
        a = 2.5 * e / steps if step_size is None else step_size
        *_, adv = _pgd(scorer, x, y, eps_n, start, norm=norm, steps=steps, step_size=a, clip=clip)
        accs.append(float(np.mean(~adv)))
    return one_or_many(accs, scalar)


_ACCURACY: dict[str, Callable[..., Any]] = {
    "fgsm": fgsm_accuracy,
    "pgd": pgd_accuracy,
    "apgd": apgd_accuracy,
}


def accuracy_curve(
    attack: str, model: Any, x: Any, y: Any, eps: Sequence[float], **kwargs: Any
) -> np.ndarray:
    """The accuracy under an attack for each budget in ``eps``: a robustness curve.

    ``attack`` is ``"fgsm"``, ``"pgd"`` or ``"apgd"``, and the result is
    ``[fgsm_accuracy(model, x, y, e, **kwargs) for e in eps]`` (likewise for the
    others) computed in one call: the inputs are checked and the clean scores
    taken once, and with a random start the draws of one eps follow those of
    the previous one (one generator seeded by ``seed`` for the whole curve in
    `pgd_accuracy`; `apgd_accuracy` reseeds per eps).

    Args:
        attack: ``"fgsm"``, ``"pgd"`` or ``"apgd"``.
        model: a Keras classifier, as in the accuracy function.
        x: inputs, as in the accuracy function.
        y: labels or ``None``, as in the accuracy function.
        eps: a non-empty sequence of budgets ``>= 0`` (a single number gives an
            array of one).
        **kwargs: the accuracy function's other arguments (``steps``, ``norm``,
            ``clip``...).

    Returns:
        A float64 array of accuracies in [0, 1], one per budget.

    Raises:
        ValueError: an unknown ``attack``, an empty ``eps``, and whatever the
            accuracy function raises.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import accuracy_curve
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> x, y = np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([0, 0])
    >>> print(accuracy_curve("pgd", model, x, y, [0.5, 2.0, 4.0], norm="l2"))
    [1.  0.5 0. ]
    """
    fn = _ACCURACY[check_choice("attack", attack, tuple(_ACCURACY))]
    values, _ = check_eps(eps)
    return np.asarray(fn(model, x, y, Curve(values), **kwargs), dtype="float64").reshape(-1)
