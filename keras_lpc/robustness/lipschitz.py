"""Lipschitz proxy: the norm of the input gradient of the logit margin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc._validation import check_choice, check_int
from keras_lpc.robustness._scores import (
    OUTPUTS,
    batches,
    check_inputs,
    check_labels,
    forward,
    score_function,
)


@dataclass
class LipschitzResult:
    """Margin-gradient norms: ``max``, ``mean`` and ``per_sample`` (score units per input unit)."""

    max: float
    mean: float
    per_sample: np.ndarray


def _margin_cotangent(scores: Any, labels: Any) -> Any:
    # e_y - e_j with j = argmax_{j != y} f_j: the gradient of the margin.
    classes = ops.shape(scores)[1]
    own = ops.one_hot(labels, classes, dtype=scores.dtype)
    others = ops.where(own > 0, ops.full_like(scores, -np.inf), scores)
    rival = ops.one_hot(ops.argmax(others, axis=1), classes, dtype=scores.dtype)
    return ops.expand_dims(own - rival, 0)


def lipschitz(
    model: Any, x: Any, y: Any = None, *, batch_size: int = 256, outputs: str = "auto"
) -> LipschitzResult:
    """Max and mean over inputs of the gradient norm of the logit margin.

    With pre-softmax scores ``f`` and label ``y`` (the model's prediction
    when ``y`` is ``None``), per input::

        L_n = || grad_x ( f_y(x_n) - max_{j != y} f_j(x_n) ) ||_2

    (the gradient of the max is that of its maximiser), computed on the
    device in one compiled forward and backward pass per batch. A local Lipschitz
    constant of the margin, in score units per input unit; a collapsed
    (robust) model has small values.

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2.
        x: inputs, a batch matching the model's input shape.
        y: optional labels (N,) or one-hot rows (positional or keyword);
            default: the prediction.
        batch_size: inputs processed together (padded to a power of two).
        outputs: ``"auto"``, ``"logits"`` or ``"probabilities"``: what the model
            returns (see `keras_lpc.robustness.deepfool`).

    Returns:
        A `LipschitzResult` with ``max``, ``mean`` and ``per_sample``.

    Raises:
        ValueError: ``x`` empty or not matching the model input; bad ``y``;
            a model with fewer than 2 outputs or returning probabilities.
        TypeError: a non-integer ``batch_size`` or a non-Keras ``model``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import lipschitz
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[3.0, 0.0], [0.0, 4.0]]), np.zeros(2)])
    >>> res = lipschitz(model, np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> print(round(res.max, 3), round(res.mean, 3))  # ||w_0 - w_1|| = ||(3, -4)||
    5.0 5.0
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    outputs = check_choice("outputs", outputs, OUTPUTS)
    x = check_inputs(model, x)
    scores = forward(model, x, batch_size, outputs)
    labels = np.argmax(scores, axis=1) if y is None else check_labels(y, len(x), scores.shape[1])
    labels = labels.astype("int32")
    fn = score_function(model, outputs)

    def norms(x: Any, labels: Any) -> Any:
        _, g = backend.vjp(fn, x, _margin_cotangent, labels)
        flat = ops.reshape(g[0], (ops.shape(x)[0], -1))
        return ops.sqrt(ops.sum(flat * flat, axis=1))

    run = backend.cached(model, ("lipschitz", outputs), lambda: backend.jit(norms, model.variables))
    parts = []
    for a, b, size in batches(len(x), batch_size):
        out = run(backend.pad(x[a:b], size), backend.pad(labels[a:b], size))
        parts.append(np.asarray(ops.convert_to_numpy(out))[: b - a])
    per_sample = np.concatenate(parts).astype("float64")
    return LipschitzResult(float(per_sample.max()), float(per_sample.mean()), per_sample)
