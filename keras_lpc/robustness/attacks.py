"""FGSM and PGD accuracy of any Keras model, on the cross-entropy of its logits."""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from keras_lpc._validation import check_choice, check_float, check_int
from keras_lpc.robustness._scores import Scorer, check_inputs, check_labels


def _ce_cotangent(scores: Any, labels: Any) -> Any:
    # d CE / d f = softmax(f) - e_y
    onehot = ops.one_hot(labels, ops.shape(scores)[1], dtype=scores.dtype)
    return ops.expand_dims(ops.softmax(scores, axis=-1) - onehot, 0)


def _eps_list(eps: Any) -> tuple[list[float], bool]:
    scalar = np.ndim(eps) == 0
    values = [eps] if scalar else list(np.asarray(eps).reshape(-1))
    if not values:
        raise ValueError(f"`eps` must be a number or a non-empty list. Received: eps={eps!r}")
    return [
        check_float("eps", v.item() if hasattr(v, "item") else v, minimum=0.0) for v in values
    ], scalar


def _setup(model: Any, x: Any, y: Any, batch_size: int) -> tuple[Scorer, np.ndarray, np.ndarray]:
    batch_size = check_int("batch_size", batch_size, minimum=1)
    x = check_inputs(model, x)
    scorer = Scorer(model, batch_size)
    classes = scorer.forward(x[:1]).shape[1]
    return scorer, x, check_labels(y, len(x), classes).astype("int32")


def _ce_grad(scorer: Scorer, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    b = scorer.batch_size
    return np.concatenate(
        [scorer.vjp(x[i : i + b], _ce_cotangent, y[i : i + b])[1][0] for i in range(0, len(x), b)]
    )


def _accuracy(scorer: Scorer, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(scorer.forward(x.astype(scorer.dtype)), axis=1) == y))


def _l2_normalise(g: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(g.reshape(len(g), -1), axis=1).reshape((-1,) + (1,) * (g.ndim - 1))
    return np.divide(g, norm, out=np.zeros_like(g), where=norm > 0)


def _result(values: list[float], scalar: bool) -> float | np.ndarray:
    return values[0] if scalar else np.asarray(values)


def fgsm_accuracy(
    model: Any,
    x: Any,
    y: Any,
    eps: float | list[float],
    *,
    clip: tuple[float, float] | None = None,
    batch_size: int = 256,
) -> float | np.ndarray:
    """Accuracy under the fast gradient sign attack, for one or several ``eps``.

    ``x_adv = x + eps * sign(grad_x CE(softmax(f(x)), y))`` (L-inf budget
    ``eps`` in input units, clipped to ``clip`` if given), with ``f`` the
    pre-softmax scores; returns ``mean(argmax f(x_adv) == y)``.

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2.
        x: inputs, a batch matching the model's input shape.
        y: labels (N,) or one-hot rows.
        eps: a budget ``>= 0`` or a list of them.
        clip: optional ``(lo, hi)`` range of valid inputs.
        batch_size: inputs processed together.

    Returns:
        The accuracy (a float in [0, 1]), or an array of them, one per eps.

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
    scorer, x, y = _setup(model, x, y, batch_size)
    direction = np.sign(_ce_grad(scorer, x, y))
    accs = []
    for e in values:
        xa = x + e * direction
        accs.append(_accuracy(scorer, np.clip(xa, *clip) if clip is not None else xa, y))
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
        y: labels (N,) or one-hot rows.
        eps: a budget ``>= 0`` (input units, in ``norm``) or a list of them.
        steps: number of gradient steps, ``>= 1``.
        step_size: step length ``> 0``; default ``2.5 * eps / steps``.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start from a uniformly random point of the ball.
        clip: optional ``(lo, hi)`` range of valid inputs.
        batch_size: inputs processed together.
        seed: seed of the random start.

    Returns:
        The accuracy (a float in [0, 1]), or an array of them, one per eps.

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
    scorer, x, y = _setup(model, x, y, batch_size)
    rng = np.random.default_rng(seed)
    shape = (-1,) + (1,) * (x.ndim - 1)
    accs = []
    for e in values:
        a = 2.5 * e / steps if step_size is None else step_size
        x0 = x.astype("float64")
        delta = np.zeros_like(x0)
        if random_start and e > 0:
            if norm == "linf":
                delta = rng.uniform(-e, e, size=x0.shape)
            else:
                u = _l2_normalise(rng.standard_normal(x0.shape))
                dim = x0[0].size
                delta = u * (e * rng.uniform(size=len(x0)) ** (1.0 / dim)).reshape(shape)
        for _ in range(steps if e > 0 else 0):
            g = _ce_grad(scorer, (x0 + delta).astype(x.dtype), y)
            if norm == "linf":
                delta = np.clip(delta + a * np.sign(g), -e, e)
            else:
                delta = delta + a * _l2_normalise(g)
                size = np.linalg.norm(delta.reshape(len(delta), -1), axis=1)
                scale = np.minimum(1.0, e / np.maximum(size, 1e-30))
                delta = delta * scale.reshape(shape)
            if clip is not None:
                delta = np.clip(x0 + delta, *clip) - x0
        accs.append(_accuracy(scorer, x0 + delta, y))
    return _result(accs, scalar)
