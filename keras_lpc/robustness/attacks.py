"""FGSM and PGD accuracy of any Keras model, on the cross-entropy of its logits.

Both attacks run on the device: the gradient steps, projections and the
final predictions are one compiled function per batch (`keras_lpc.backend`);
only the per-input hits come back to the host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc._validation import check_choice, check_float, check_int
from keras_lpc.robustness._minnorm import COTANGENTS, clip_delta, project, steepest
from keras_lpc.robustness._scores import (
    OUTPUTS,
    batches,
    check_clip,
    check_inputs,
    check_labels,
    forward,
    score_function,
)


def _eps_list(eps: Any) -> tuple[list[float], bool]:
    scalar = np.ndim(eps) == 0
    values = [eps] if scalar else list(np.asarray(eps).reshape(-1))
    if not values:
        raise ValueError(f"`eps` must be a number or a non-empty list. Received: eps={eps!r}")
    return [
        check_float("eps", v.item() if hasattr(v, "item") else v, minimum=0.0) for v in values
    ], scalar


def _setup(
    model: Any, x: Any, y: Any, batch_size: int, outputs: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batch_size = check_int("batch_size", batch_size, minimum=1)
    outputs = check_choice("outputs", outputs, OUTPUTS)
    x = check_inputs(model, x)
    scores = forward(model, x, batch_size, outputs)
    labels = np.argmax(scores, axis=1) if y is None else check_labels(y, len(x), scores.shape[1])
    return x, labels.astype("int32"), scores


def _hits(fn: Callable[[Any], Any], x: Any, y: Any) -> Any:
    return ops.argmax(fn(x), axis=1) == ops.cast(y, "int32")


def _bounds(clip: tuple[float, float] | None, dtype: Any) -> tuple[Any, Any]:
    return (dtype(0.0), dtype(0.0)) if clip is None else (dtype(clip[0]), dtype(clip[1]))


def _accuracy(hits: list[np.ndarray]) -> float:
    return float(np.mean(np.concatenate(hits)))


def _result(values: list[float], scalar: bool) -> float | np.ndarray:
    return values[0] if scalar else np.asarray(values, dtype="float64")


def fgsm_accuracy(
    model: Any,
    x: Any,
    y: Any,
    eps: float | list[float],
    *,
    clip: tuple[float, float] | None = None,
    batch_size: int = 256,
    outputs: str = "auto",
) -> float | np.ndarray:
    """Accuracy under the fast gradient sign attack, for one or several ``eps``.

    ``x_adv = x + eps * sign(grad_x CE(softmax(f(x)), y))`` (L-inf budget
    ``eps`` in input units, clipped to ``clip`` if given), with ``f`` the
    pre-softmax scores; returns ``mean(argmax f(x_adv) == y)``.

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2.
        x: inputs, a batch matching the model's input shape.
        y: labels (N,) or one-hot rows (positional or keyword); ``None`` uses the
            clean predictions.
        eps: a budget ``>= 0`` or a list of them.
        clip: optional ``(lo, hi)`` range of valid inputs.
        batch_size: inputs processed together (padded to a power of two).
        outputs: ``"auto"``, ``"logits"`` or ``"probabilities"``: what the model
            returns (see `keras_lpc.robustness.deepfool`).

    Returns:
        One rule for both attacks: a scalar ``eps`` (a number or a 0-d array)
        gives the accuracy as a float in [0, 1]; a sequence or array of budgets
        gives a float64 ndarray of accuracies of the same length (a list of one
        gives an array of one).

    Raises:
        ValueError: negative or non-finite ``eps``, bad ``x`` / ``y``.
        TypeError: non-numeric ``eps``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import fgsm_accuracy
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> x, y = np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([0, 0])
    >>> print(fgsm_accuracy(model, x, y, [0.0, 2.0, 4.0]))  # margins 2 and 6, step costs 2 eps
    [1.  0.5 0. ]
    """
    values, scalar = _eps_list(eps)
    clip = check_clip(clip)
    x, y, _ = _setup(model, x, y, batch_size, outputs)
    fn = score_function(model, outputs)

    clipped = clip is not None

    def attack(x: Any, y: Any, eps: Any, lo: Any, hi: Any) -> Any:
        _, g = backend.vjp(fn, x, COTANGENTS["ce"], y)
        return _hits(fn, x + clip_delta(x, eps * ops.sign(g[0]), (lo, hi) if clipped else None), y)

    run = backend.cached(
        model, ("fgsm", outputs, clipped), lambda: backend.jit(attack, model.variables)
    )
    accs = []
    for e in values:
        hits = []
        for a, b, size in batches(len(x), batch_size):
            out = run(
                backend.pad(x[a:b], size),
                backend.pad(y[a:b], size),
                x.dtype.type(e),
                *_bounds(clip, x.dtype.type),
            )
            hits.append(np.asarray(ops.convert_to_numpy(out))[: b - a])
        accs.append(_accuracy(hits))
    return _result(accs, scalar)


def pgd_accuracy(
    model: Any,
    x: Any,
    y: Any,
    eps: float | list[float],
    *,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "linf",
    random_start: bool = True,
    clip: tuple[float, float] | None = None,
    batch_size: int = 256,
    seed: int = 0,
    outputs: str = "auto",
) -> float | np.ndarray:
    """Accuracy under projected gradient descent (Madry et al.), for one or several ``eps``.

    Starting from ``x`` (or a uniform random point of the eps-ball), each of
    ``steps`` steps ascends the cross-entropy of the pre-softmax scores and
    projects back onto the ball::

        linf: x <- x0 + clip(x + a * sign(g) - x0, -eps, eps)
        l2:   x <- x0 + P(x + a * g / ||g||_2 - x0),  P(d) = d * min(1, eps / ||d||_2)

    with ``a = step_size`` (default ``2.5 * eps / steps``), then clipped to
    ``clip`` if given. Returns ``mean(argmax f(x_adv) == y)``.

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2.
        x: inputs, a batch matching the model's input shape.
        y: labels (N,) or one-hot rows (positional or keyword); ``None`` uses the
            clean predictions.
        eps: a budget ``>= 0`` (input units, in ``norm``) or a list of them.
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
        One rule for both attacks: a scalar ``eps`` (a number or a 0-d array)
        gives the accuracy as a float in [0, 1]; a sequence or array of budgets
        gives a float64 ndarray of accuracies of the same length (a list of one
        gives an array of one).

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
    >>> print(pgd_accuracy(model, x, y, [0.5, 2.0, 4.0], norm="l2"))
    [1.  0.5 0. ]
    """
    values, scalar = _eps_list(eps)
    steps = check_int("steps", steps, minimum=1)
    if step_size is not None:
        step_size = check_float("step_size", step_size, strictly_positive=True)
    norm = check_choice("norm", norm, ("linf", "l2"))
    clip = check_clip(clip)
    x, y, scores = _setup(model, x, y, batch_size, outputs)
    fn = score_function(model, outputs)

    clipped = clip is not None

    def attack(x0: Any, y: Any, delta: Any, eps: Any, a: Any, steps: Any, lo: Any, hi: Any) -> Any:
        bounds = (lo, hi) if clipped else None

        def step(i: Any, delta: Any) -> Any:
            _, g = backend.vjp(fn, x0 + delta, COTANGENTS["ce"], y)
            return clip_delta(x0, project(delta + a * steepest(g[0], norm), eps, norm), bounds)

        return _hits(fn, x0 + ops.fori_loop(0, steps, step, delta), y)

    run = backend.cached(
        model, ("pgd", outputs, norm, clipped), lambda: backend.jit(attack, model.variables)
    )
    rng = np.random.default_rng(seed)
    shape = (-1,) + (1,) * (x.ndim - 1)
    accs = []
    for e in values:
        if e == 0:  # no budget: the clean accuracy
            accs.append(float(np.mean(np.argmax(scores, axis=1) == y)))
            continue
        a = 2.5 * e / steps if step_size is None else step_size
        delta = np.zeros(x.shape)
        if random_start:
            if norm == "linf":
                delta = rng.uniform(-e, e, size=x.shape)
            else:
                u = rng.standard_normal(x.shape)
                u = u / np.maximum(np.linalg.norm(u.reshape(len(u), -1), axis=1), 1e-300).reshape(
                    shape
                )
                delta = u * (e * rng.uniform(size=len(x)) ** (1.0 / x[0].size)).reshape(shape)
        delta = delta.astype(x.dtype)
        hits = []
        for lo, hi, size in batches(len(x), batch_size):
            out = run(
                backend.pad(x[lo:hi], size),
                backend.pad(y[lo:hi], size),
                backend.pad(delta[lo:hi], size),
                x.dtype.type(e),
                x.dtype.type(a),
                np.int32(steps),
                *_bounds(clip, x.dtype.type),
            )
            hits.append(np.asarray(ops.convert_to_numpy(out))[: hi - lo])
        accs.append(_accuracy(hits))
    return _result(accs, scalar)
