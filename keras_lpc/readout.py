"""Reading a model's latents and outputs: `latents`, `latents_and_outputs`, `outputs`.

The latents are recorded by the `LatentPointCollapse` layer itself during an
eager forward pass (see `recording`), so this works for Sequential,
functional, subclassed and nested models alike, with one forward pass for
latents and outputs together. The batches stay on the device and cross to
the host once, concatenated.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from keras_lpc import layers as layers_module

__all__ = ["latents", "latents_and_outputs", "outputs", "recording"]
from keras_lpc._models import find_lpc_layers, first_output
from keras_lpc._validation import check_int

_HALF = ("float16", "bfloat16")


@contextlib.contextmanager
def recording(layer: Any) -> Iterator[list]:
    """Collect the outputs of ``layer`` in the eager forward passes run inside the block.

    The registry entry lives exactly as long as the block, and is removed
    even when the forward pass raises; a nested recording of the same layer
    takes over and then gives the outer one back. Keys are the layer objects
    themselves (weak keys) where `layers._RECORDERS` is a `WeakKeyDictionary`;
    an ``id()`` key is only used with the older dict, and never outlives the
    block, which holds the layer alive (so the id cannot be reused meanwhile).
    """
    registry = layers_module._RECORDERS
    key = layer if isinstance(registry, weakref.WeakKeyDictionary) else id(layer)
    previous = registry.get(key)
    calls: list = []
    registry[key] = calls
    try:
        yield calls
    finally:
        if previous is None:
            registry.pop(key, None)
        else:
            registry[key] = previous


def to_numpy(t: Any) -> np.ndarray:
    """A backend tensor as NumPy; float16/bfloat16 become float32 (NumPy lacks bfloat16)."""
    if str(getattr(t, "dtype", "")).split(".")[-1] in _HALF:
        t = keras.ops.cast(t, "float32")
    arr = np.asarray(keras.ops.convert_to_numpy(t))
    return arr.astype("float32") if arr.dtype.name in _HALF else arr


def _batches(x: Any, batch_size: int) -> tuple[int, Iterator[Any]]:
    """Number of rows of ``x`` (an array or a list/dict of arrays) and its batches."""
    leaves = keras.tree.flatten(x)
    if not leaves:
        raise ValueError(f"`x` must hold at least one array. Received: x={x!r}")
    if not hasattr(leaves[0], "shape"):
        x = np.asarray(x)
        leaves = [x]
    n = int(leaves[0].shape[0]) if len(leaves[0].shape) else 0
    if n == 0:
        raise ValueError(
            "`x` must be a non-empty batch of inputs. "
            f"Received: x with shape {tuple(leaves[0].shape)}"
        )

    def gen() -> Iterator[Any]:
        for start in range(0, n, batch_size):
            stop = start + batch_size
            yield keras.tree.map_structure(lambda a, lo=start, hi=stop: a[lo:hi], x)

    return n, gen()


def latents_and_outputs(
    model: Any, x: Any, layer: Any = None, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """The LPC layer's output ``z`` and the model's (first) output on ``x``, from one pass.

    As `latents`, with the model's outputs of the same forward passes; each
    comes to the host once (the batches are joined on the device first).

    Returns:
        ``(z, outputs)`` as NumPy; float16/bfloat16 come back as float32.

    Example:

    >>> import keras, numpy as np, keras_lpc
    >>> model = keras.Sequential([keras.Input((3,)),
    ...                           keras_lpc.LatentPointCollapse(2, name="lpc"),
    ...                           keras.layers.Dense(4)])
    >>> z, out = keras_lpc.latents_and_outputs(model, np.ones((5, 3), "float32"))
    >>> z.shape, out.shape
    ((5, 2), (5, 4))
    """
    target = find_lpc_layers(model, layer, arg="layer")[0]
    batch_size = check_int("batch_size", batch_size, minimum=1)
    _, batches = _batches(x, batch_size)
    zs: list[Any] = []
    outs: list[Any] = []
    for batch in batches:
        with recording(target) as calls:
            out = model(batch, training=False)
        if not calls:
            raise ValueError(
                f"`layer` {target.name!r} was not called by the model's forward pass. "
                f"Received: layer={layer!r}"
            )
        zs.append(calls[-1])
        outs.append(first_output(out))
    return _host(zs), _host(outs)


def _host(parts: list[Any]) -> np.ndarray:
    """Backend tensors joined on the device, then one transfer to NumPy."""
    joined = parts[0] if len(parts) == 1 else keras.ops.concatenate(parts, axis=0)
    return to_numpy(joined)


def outputs(model: Any, x: Any, batch_size: int = 1024) -> np.ndarray:
    """The model's (first) outputs on ``x`` as NumPy, in eager batches; half precision as float32.

    Example:

    >>> import keras, numpy as np, keras_lpc
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    >>> keras_lpc.readout.outputs(model, np.ones((5, 3), "float32")).shape
    (5, 4)
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    _, batches = _batches(x, batch_size)
    return _host([first_output(model(batch, training=False)) for batch in batches])


def latents(model: Any, x: Any, layer: Any = None, batch_size: int = 256) -> np.ndarray:
    """The output ``z`` of a model's `LatentPointCollapse` layer on inputs ``x``, as NumPy.

    Runs ``model(x, training=False)`` eagerly in batches and records what the
    LPC layer returns, so it works for any model: Sequential, functional,
    nested (the layer inside a sub-model) and subclassed. Under a
    mixed-precision policy the latents come back as float32. The latents
    and the outputs of one pass: `latents_and_outputs`.

    Args:
        model: a Keras model containing a `LatentPointCollapse` layer.
        x: inputs, batch first: an array, or the list/dict of arrays the
            model takes.
        layer: the `LatentPointCollapse` layer (object or name) to read;
            ``None``: the first one found.
        batch_size: rows per forward pass (>= 1).

    Returns:
        ``z`` with shape ``(N,) + layer output shape`` (float32, float64 for
        a float64 model).

    Raises:
        ValueError: the model has no such layer, the layer is not called by
            the forward pass, or ``x`` is empty.

    Example:

    >>> import keras, numpy as np, keras_lpc
    >>> model = keras.Sequential([keras.Input((3,)),
    ...                           keras_lpc.LatentPointCollapse(2, name="lpc"),
    ...                           keras.layers.Dense(4)])
    >>> z = keras_lpc.latents(model, np.ones((5, 3), "float32"))
    >>> z.shape, z.dtype.name
    ((5, 2), 'float32')
    """
    return latents_and_outputs(model, x, layer, batch_size)[0]
