"""Running the robustness measures at another floating-point precision."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_lpc._validation import check_choice

DTYPES = ("float32", "float64")


def _set_dtype(node: Any, dtype: str) -> None:
    # Every layer config (and the InputLayer's) stores its policy under "dtype".
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "dtype" and (isinstance(value, (str, dict)) or value is None):
                node[key] = dtype
            else:
                _set_dtype(value, dtype)
    elif isinstance(node, list):
        for item in node:
            _set_dtype(item, dtype)


def cast_model(model: Any, dtype: str = "float64") -> keras.Model:
    """A copy of ``model`` whose layers all compute and store weights in ``dtype``.

    The copy is rebuilt from the model's config with every layer's dtype
    policy set to ``dtype`` and the weights copied over (cast; float32 to
    float64 is exact). The robustness functions follow the model: given a
    float64 model they keep the inputs, the perturbations and every forward
    and backward pass in float64, so ``deepfool(cast_model(model), x)``
    answers whether float32 rounding changes a DeepFool score. The original
    model is not modified.

    float64 needs the TensorFlow backend: on JAX and PyTorch, Keras 3 type
    promotion maps float64 to float32 (``keras.backend.result_type("float64",
    "float64")`` is ``"float32"`` there, to match JAX's default), so ops such
    as ``matmul`` would silently compute in float32. This raises instead.

    Args:
        model: a Sequential or functional Keras model (subclassed models
            have no config to rebuild from).
        dtype: ``"float64"`` or ``"float32"``.

    Returns:
        A new, uncompiled model with the same weights and outputs (up to rounding).

    Raises:
        TypeError: ``model`` is not a Keras model.
        ValueError: unknown ``dtype``; float64 on a backend whose Keras ops
            compute it in float32 (JAX, PyTorch); a model that cannot be
            rebuilt from its config.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import cast_model, deepfool
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> copy = cast_model(model, "float32")  # "float64" on the TensorFlow backend
    >>> res = deepfool(copy, np.array([[3.0, 4.0]]), overshoot=0.0)
    >>> str(copy.layers[0].kernel.dtype), res.perturbation.dtype.name, round(res.score, 6)
    ('float32', 'float32', 0.60002)
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a Keras model. Received: model={model!r}")
    dtype = check_choice("dtype", dtype, DTYPES)
    promoted = keras.backend.result_type(dtype, dtype)
    if promoted != dtype:
        raise ValueError(
            f"`dtype` {dtype} needs the TensorFlow backend: Keras promotes {dtype} to "
            f"{promoted} on the {keras.backend.backend()} backend, so the copy would compute "
            f"in {promoted}. Received: dtype={dtype!r}"
        )
    config = keras.saving.serialize_keras_object(model)
    _set_dtype(config, dtype)
    try:
        copy = keras.saving.deserialize_keras_object(config)
    except Exception as err:  # any rebuild failure: say which model and why
        raise ValueError(
            f"`model` could not be rebuilt from its config in {dtype} ({type(err).__name__}: "
            f"{err}). Received: model={model.name!r}"
        ) from err
    if len(copy.weights) != len(model.weights):
        raise ValueError(
            f"`model` could not be rebuilt with all its weights ({len(copy.weights)} of "
            f"{len(model.weights)}). Received: model={model.name!r}"
        )
    for target, source in zip(copy.weights, model.weights):
        value = np.asarray(keras.ops.convert_to_numpy(source.value))
        if np.issubdtype(value.dtype, np.floating):
            value = value.astype(dtype)
        target.assign(value)
    return copy
