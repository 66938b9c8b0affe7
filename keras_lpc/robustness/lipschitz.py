"""Lipschitz proxy: the norm of the input gradient of the logit margin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_lpc import backend
from keras_lpc.robustness._checks import prepare
from keras_lpc.robustness._losses import COTANGENTS
from keras_lpc.robustness._norms import norm_of


@dataclass
class LipschitzResult:
    """Margin-gradient norms: ``max``, ``mean`` and ``per_sample`` (score units per input unit)."""

    max: float
    mean: float
    per_sample: np.ndarray


def _norms(fn: Callable[[Any], Any]) -> Callable[[Any, Any], tuple[Any]]:
    # the gradient of the margin is e_y - e_j with j = argmax_{j != y} f_j (its maximiser)
    def norms(x: Any, labels: Any) -> tuple[Any]:
        _, g = backend.vjp(fn, x, COTANGENTS["margin"], labels)
        return (norm_of(g[0], "l2"),)

    return norms


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
    scorer, x, labels, _ = prepare(model, x, y, batch_size, outputs)
    (per_sample,) = scorer.run("lipschitz", _norms, (x, labels), ())
    per_sample = per_sample.astype("float64")
    return LipschitzResult(float(per_sample.max()), float(per_sample.mean()), per_sample)
