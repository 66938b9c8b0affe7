"""Class scores (logits) of any Keras model, input checks and compiled forward passes.

Robustness is measured on the scores *before* a final softmax: DeepFool's
linearisation and the Lipschitz margin are defined on logits, and a softmax
output saturates, which makes its gradients vanish. With ``outputs="auto"``
a final softmax found in the model's graph (``Dense(...,
activation="softmax")``, ``Softmax`` or ``Activation("softmax")`` as the
output layer, or ``keras.ops.softmax`` as the functional graph's last
operation) is skipped by rebuilding the model up to its input. Where the
output values are the only evidence (every row in [0, 1] summing to 1, e.g.
a softmax inside a ``Lambda``), a warning says how to state what the model
returns: ``outputs="logits"`` (use the outputs as they are) or
``outputs="probabilities"`` (use ``log p``, which has the same class-score
differences and gradients as the logits of a softmax).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc._models import first_output
from keras_lpc._validation import as_labels, check_choice, check_float

OUTPUTS = ("auto", "logits", "probabilities")

_HOW = (
    "Pass outputs='probabilities' (scores = log p) or outputs='logits' (outputs used as they "
    "are) to say what the model returns, or build it with a linear last layer (logits)"
)


def _is_softmax(activation: Any) -> bool:
    return activation is keras.activations.softmax or (
        getattr(activation, "__name__", "") == "softmax"
    )


def _output_operation(model: Any) -> Any:
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if outputs:
        history = getattr(first_output(outputs), "_keras_history", None)
        if history is not None:
            return history[0]
    layers = getattr(model, "layers", None)
    return layers[-1] if layers else None


def _softmax_kind(last: Any) -> str | None:
    """``"input"`` if ``last`` is a softmax of its input, ``"dense"`` for a softmax Dense."""
    if last is None:
        return None
    if isinstance(last, keras.layers.Softmax) or type(last).__name__ == "Softmax":
        return "input"
    if _is_softmax(getattr(last, "activation", None)):
        if isinstance(last, keras.layers.Activation):
            return "input"
        if isinstance(last, keras.layers.Dense):
            return "dense"
        return "other"
    return None


def _flat(out: Any) -> Any:
    out = first_output(out)
    if all(isinstance(d, int) for d in out.shape[1:]):
        # (-1, C) keeps the class count static where the batch axis is not (tf.function)
        return ops.reshape(out, (-1, int(np.prod(out.shape[1:]))))
    return ops.reshape(out, (ops.shape(out)[0], -1))


def _build_score_function(model: Any, outputs: str) -> tuple[Callable[[Any], Any], bool]:
    kind = None if outputs == "logits" else _softmax_kind(_output_operation(model))
    if kind is None:
        if outputs == "probabilities":

            def log_probabilities(x: Any) -> Any:
                p = _flat(model(x, training=False))
                return ops.log(ops.maximum(p, ops.cast(1e-30, p.dtype)))

            return log_probabilities, True
        return (lambda x: _flat(model(x, training=False))), outputs == "logits"
    last = _output_operation(model)
    if kind == "other":
        raise ValueError(
            f"`model` ends with a {type(last).__name__} layer with a softmax activation, "
            f"which cannot be skipped. {_HOW}. Received: model={model.name!r}"
        )
    try:
        inner = keras.Model(model.inputs, last.input)
    except (AttributeError, ValueError, TypeError) as err:
        raise ValueError(
            f"`model` ends with a softmax that could not be skipped ({err}). {_HOW}. "
            f"Received: model={model.name!r}"
        ) from err
    if kind == "input":
        return (lambda x: _flat(inner(x, training=False))), True

    def dense_scores(x: Any) -> Any:
        z = ops.matmul(inner(x, training=False), last.kernel)
        return z + last.bias if last.use_bias else z

    return dense_scores, True


def score_function(model: Any, outputs: str = "auto") -> Callable[[Any], Any]:
    """A ``keras.ops`` function mapping a batch of inputs to pre-softmax scores (N, C).

    Built once per model and ``outputs`` (see the module docstring) and cached on
    the model; it reads the model's current weights at every call.
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(f"`model` must be a Keras model. Received: model={model!r}")
    outputs = check_choice("outputs", outputs, OUTPUTS)
    return backend.cached(
        model, ("scores", outputs), lambda: _build_score_function(model, outputs)
    )[0]


def scores_known(model: Any, outputs: str) -> bool:
    """Whether the scores are known to be logits (graph or user said so): no value check."""
    return backend.cached(
        model, ("scores", outputs), lambda: _build_score_function(model, outputs)
    )[1]


scores_function = score_function  # the name used before the compiled attacks


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
    """Integer labels ``y`` (N,) of ``x`` in ``[0, classes)``; one-hot rows become indices
    (`keras_lpc._validation.as_labels`, for backend tensors too)."""
    y = np.asarray(keras.ops.convert_to_numpy(y))
    return as_labels(y, n, "y", one_hot=True, of="x", classes=classes)


def batches(n: int, batch_size: int) -> list[tuple[int, int, int]]:
    """``(start, stop, padded size)`` of each batch: sizes rounded up by `backend.bucket`."""
    return [
        (i, min(i + batch_size, n), backend.bucket(min(batch_size, n - i)))
        for i in range(0, n, batch_size)
    ]


def forward(model: Any, x: np.ndarray, batch_size: int = 256, outputs: str = "auto") -> np.ndarray:
    """Pre-softmax scores (N, C) as float64, compiled and batched; checks the scores.

    Raises ``ValueError`` for fewer than 2 classes; warns (once per call site)
    when ``outputs="auto"`` found no softmax in the graph but the values look
    like probabilities.
    """
    fn = score_function(model, outputs)
    run = backend.cached(model, ("forward", outputs), lambda: backend.jit(fn, model.variables))
    parts = [
        ops.convert_to_numpy(run(backend.pad(x[a:b], size)))[: b - a]
        for a, b, size in batches(len(x), batch_size)
    ]
    scores = np.concatenate(parts).astype("float64")
    name = getattr(model, "name", repr(model))
    if scores.shape[1] < 2:
        raise ValueError(
            "`model` must output at least 2 class scores. "
            f"Received: model={name!r} with {scores.shape[1]} output"
        )
    if (
        not scores_known(model, outputs)
        and np.all(scores >= 0)
        and np.all(scores <= 1)
        and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
    ):
        warnings.warn(
            f"`model` {name!r} has no softmax in its graph but its outputs look like "
            "probabilities (rows in [0, 1] summing to 1); they are used as class scores "
            f"(logits). {_HOW}.",
            UserWarning,
            stacklevel=3,
        )
    return scores


def check_clip(clip: Any) -> tuple[float, float] | None:
    """``clip`` as ``(lo, hi)`` floats with ``lo < hi``, or ``None``: every attack's check."""
    if clip is None:
        return None
    if not isinstance(clip, (tuple, list)) or len(clip) != 2:
        raise ValueError(f"`clip` must be a pair (lo, hi). Received: clip={clip!r}")
    lo, hi = check_float("clip[0]", clip[0]), check_float("clip[1]", clip[1])
    if not lo < hi:
        raise ValueError(f"`clip` must satisfy lo < hi. Received: clip={clip!r}")
    return lo, hi
