"""Reading latents and outputs of any Keras model, and normalising metric data.

The latents are recorded by the `LatentPointCollapse` layer itself during an
eager forward pass, so this works for Sequential, functional, subclassed and
nested models alike, with one forward pass for latents and outputs together.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_lpc import layers as layers_module
from keras_lpc._models import find_lpc_layers


def collect(
    model: Any, x: np.ndarray, layer: Any = None, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` on ``x`` and return ``(z, outputs)`` as NumPy arrays.

    Args:
        model: a Keras model containing a `LatentPointCollapse` layer.
        x: inputs (an array, batch first).
        layer: the LPC layer (object or name) to read; default: the first.
        batch_size: forward-pass batch size.

    Returns:
        ``z`` of shape ``(N, ...)`` (the layer's output) and the model's
        outputs of shape ``(N, ...)``, both as float arrays.
    """
    target = find_lpc_layers(model, layer, arg="layer")[0]
    zs: list[np.ndarray] = []
    outs: list[np.ndarray] = []
    n = len(x)
    for start in range(0, n, batch_size):
        recorder: list = []
        layers_module._RECORDERS[id(target)] = recorder
        try:
            out = model(x[start : start + batch_size], training=False)
        finally:
            layers_module._RECORDERS.pop(id(target), None)
        if not recorder:
            raise ValueError(
                f"`layer` {target.name!r} was not called by the model's forward pass. "
                f"Received: layer={layer!r}"
            )
        if isinstance(out, (list, tuple)):
            out = out[0]
        if isinstance(out, dict):
            out = next(iter(out.values()))
        zs.append(keras.ops.convert_to_numpy(recorder[-1]))
        outs.append(keras.ops.convert_to_numpy(out))
    return np.concatenate(zs), np.concatenate(outs)


def materialize(data: Any, max_samples: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Turn metric-callback ``data`` into ``(x, y)`` NumPy arrays.

    ``data`` is an ``(x, y)`` tuple of arrays, a ``tf.data.Dataset`` or a
    `keras.utils.PyDataset` yielding ``(x, y)`` batches. At most
    ``max_samples`` rows are kept: a fixed random subset (seeded) of arrays,
    or the first batches of a dataset.
    """
    if isinstance(data, (tuple, list)):
        x, y = data[0], data[1]
        x = np.asarray(x)
        y = np.asarray(y)
        if max_samples is not None and len(x) > max_samples:
            idx = np.sort(np.random.default_rng(seed).choice(len(x), max_samples, replace=False))
            x, y = x[idx], y[idx]
        return x, y
    xs, ys, count = [], [], 0
    iterator = (
        data.as_numpy_iterator() if hasattr(data, "as_numpy_iterator") else _iter_pydataset(data)
    )
    for batch in iterator:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                f"`data` must yield (x, y) batches. Received a batch of type {type(batch).__name__}"
            )
        bx, by = np.asarray(batch[0]), np.asarray(batch[1])
        xs.append(bx)
        ys.append(by)
        count += len(bx)
        if max_samples is not None and count >= max_samples:
            break
    if not xs:
        raise ValueError("`data` must contain at least one sample. Received: an empty dataset")
    x, y = np.concatenate(xs), np.concatenate(ys)
    if max_samples is not None:
        x, y = x[:max_samples], y[:max_samples]
    return x, y


def _iter_pydataset(data: Any):
    for i in range(len(data)):
        yield data[i]


def validate_data(data: Any) -> Any:
    """Check metric-callback ``data`` when a callback is constructed."""
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise ValueError(f"`data` must be a pair (x, y). Received: data of length {len(data)}")
        x, y = data
        if not hasattr(x, "shape") or not hasattr(y, "shape"):
            x, y = np.asarray(x), np.asarray(y)
        if len(x) != len(y):
            raise ValueError(
                "`data` must hold as many labels as inputs. "
                f"Received: data with len(x)={len(x)} and len(y)={len(y)}"
            )
        if len(x) == 0:
            raise ValueError("`data` must contain at least one sample. Received: len(x)=0")
        return (x, y)
    if hasattr(data, "as_numpy_iterator") or isinstance(data, keras.utils.PyDataset):
        return data
    raise TypeError(
        "`data` must be a pair (x, y) of arrays, a tf.data.Dataset or a "
        f"keras.utils.PyDataset. Received: data of type {type(data).__name__}"
    )
