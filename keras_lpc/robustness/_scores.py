"""Class scores (logits) of any Keras model, input checks and the gradient helper.

Robustness is measured on the scores *before* a final softmax: DeepFool's
linearisation and the Lipschitz margin are defined on logits, and a softmax
output saturates, which makes its gradients vanish. A final softmax is
detected (``Dense(..., activation="softmax")``, ``Softmax`` or
``Activation("softmax")`` as the model's output layer) and skipped by
rebuilding the model up to that layer's input. A model whose outputs still
look like probabilities (every row in [0, 1] summing to 1) is refused with an
error that says how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lpc import backend


def _is_softmax(activation: Any) -> bool:
    return activation is keras.activations.softmax or (
        getattr(activation, "__name__", "") == "softmax"
    )


def _output_layer(model: Any) -> Any:
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if outputs:
        history = getattr(outputs[0], "_keras_history", None)
        if history is not None:
            return history[0]
    layers = getattr(model, "layers", None)
    return layers[-1] if layers else None


_HOW = (
    "Build the model with a linear last layer (logits) and train it with "
    "`from_logits=True`, or pass a model that returns the pre-softmax scores"
)


def scores_function(model: Any) -> Callable[[Any], Any]:
    """A ``keras.ops`` function mapping a batch of inputs to pre-softmax scores (N, C)."""
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(f"`model` must be a Keras model. Received: model={model!r}")
    last = _output_layer(model)
    softmax = last is not None and (
        isinstance(last, keras.layers.Softmax) or _is_softmax(getattr(last, "activation", None))
    )
    if not softmax:

        def scores(x: Any) -> Any:
            out = model(x, training=False)
            if isinstance(out, (list, tuple)):
                out = out[0]
            if isinstance(out, dict):
                out = next(iter(out.values()))
            return ops.reshape(out, (ops.shape(out)[0], -1))

        return scores
    try:
        inner = keras.Model(model.inputs, last.input)
    except (AttributeError, ValueError, TypeError) as err:
        raise ValueError(
            "`model` ends with a softmax that could not be skipped "
            f"({err}). {_HOW}. Received: model={model.name!r}"
        ) from err
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation)):
        return lambda x: inner(x, training=False)
    if isinstance(last, keras.layers.Dense):

        def dense_scores(x: Any) -> Any:
            z = ops.matmul(inner(x, training=False), last.kernel)
            return z + last.bias if last.use_bias else z

        return dense_scores
    raise ValueError(
        f"`model` ends with a {type(last).__name__} layer with a softmax activation, "
        f"which cannot be skipped. {_HOW}. Received: model={model.name!r}"
    )


def input_dtype(model: Any) -> str:
    """``"float64"`` for a model whose inputs are float64 (see `cast_model`), else ``"float32"``."""
    try:
        dtype = str(model.inputs[0].dtype)
    except (AttributeError, ValueError, IndexError, TypeError):
        dtype = str(getattr(model, "compute_dtype", "float32"))
    return "float64" if dtype == "float64" else "float32"


def check_inputs(model: Any, x: Any) -> np.ndarray:
    """``x`` as a float32 array (float64 for a float64 model) after checking it is a
    non-empty batch matching the model."""
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    x = np.asarray(keras.ops.convert_to_numpy(x))
    if not (np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)):
        raise TypeError(f"`x` must be a numeric array. Received: x with dtype {x.dtype}")
    x = x.astype(input_dtype(model), copy=False)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(
            "`x` must be a non-empty batch of inputs (N >= 1, at least 2 axes). "
            f"Received: x with shape {x.shape}"
        )
    try:
        expected = tuple(model.inputs[0].shape[1:])
    except (AttributeError, ValueError, IndexError, TypeError):
        expected = None
    if expected is not None and (
        len(expected) != x.ndim - 1
        or any(e is not None and e != s for e, s in zip(expected, x.shape[1:]))
    ):
        want = "(N, " + ", ".join(str(e) for e in expected) + ")"
        raise ValueError(
            f"`x` must have shape {want} to match the model input. Received: x with shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"`x` must be finite. Received: x with {int(np.sum(~np.isfinite(x)))} NaN or inf values"
        )
    return x


def check_labels(y: Any, n: int, classes: int) -> np.ndarray:
    """Integer labels (N,) in ``[0, classes)``; one-hot rows are turned into indices."""
    y = np.asarray(keras.ops.convert_to_numpy(y))
    if y.ndim == 2 and y.shape[1] == classes and y.shape[1] > 1:
        y = np.argmax(y, axis=1)
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.shape != (n,):
        raise ValueError(
            f"`y` must hold {n} integer labels (or one-hot rows). Received: y with shape {y.shape}"
        )
    if y.dtype == bool:
        y = y.astype("int64")
    if (
        not np.issubdtype(y.dtype, np.number)
        or not np.all(np.isfinite(y))
        or np.any(y != np.round(y))
    ):
        raise ValueError(
            f"`y` must hold {n} integer labels (or one-hot rows). Received: y with "
            f"non-integer values (first {y[:3].tolist()})"
        )
    y = y.astype("int64")
    if np.any((y < 0) | (y >= classes)):
        raise ValueError(
            f"`y` must hold labels in [0, {classes}). Received: y with values in "
            f"[{y.min()}, {y.max()}]"
        )
    return y


class Scorer:
    """Batched scores and input gradients of a model's pre-softmax scores."""

    def __init__(self, model: Any, batch_size: int = 256) -> None:
        self.fn = scores_function(model)
        self.diff = backend.differentiator(self.fn)
        self.batch_size = batch_size
        self.name = getattr(model, "name", repr(model))
        self.classes = 0
        self.dtype = input_dtype(model)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Scores (N, C) as float64, computed in batches; checks they are not probabilities."""
        parts = [
            self.diff.forward(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)
        ]
        scores = np.concatenate(parts).astype("float64")
        self.classes = scores.shape[1]
        if scores.shape[1] < 2:
            raise ValueError(
                "`model` must output at least 2 class scores. "
                f"Received: model={self.name!r} with {scores.shape[1]} output"
            )
        if (
            np.all(scores >= 0)
            and np.all(scores <= 1)
            and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
        ):
            raise ValueError(
                "`model` must return class scores (logits), but its outputs look like "
                f"probabilities (rows in [0, 1] summing to 1). {_HOW}. "
                f"Received: model={self.name!r}"
            )
        return scores

    def vjp(
        self, x: np.ndarray, cotangent_fn: Callable[[Any, Any], Any], aux: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores (N, C) and products (K, N, ...) for one batch (see `keras_lpc.backend`)."""
        scores, grads = self.diff.vjp(x, cotangent_fn, aux)
        return scores.astype("float64"), grads.astype("float64")
