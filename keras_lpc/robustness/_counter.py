"""Counter-based random numbers in ``keras.ops``: the same stream on every backend.

A backend's own generator (``jax.random``, ``tf.random.stateless_normal``,
``torch.Generator``) gives a different stream for the same seed on each
backend, so an attack drawing its directions there finds different points on
TensorFlow, JAX and PyTorch. Here every number is a pure function of integer
counters, computed with 32-bit integer operations that every backend performs
alike (wrapping multiplication, shifts, exclusive or), so a seed gives the same
numbers everywhere (the normal samples to float rounding of ``log``, ``cos``
and ``sin``), inside a compiled loop, on the device, with nothing read back
from it.

The hash is ``lowbias32`` (C. Wellons, "Prospecting for hash functions",
2018)::

    h ^= h >> 16;  h *= 0x7feb352d;  h ^= h >> 15;  h *= 0x846ca68b;  h ^= h >> 16

on ``int32`` tensors (``>>`` made logical by a mask). Uniforms take the top 24
bits, ``u = (h >> 8 + 1/2) / 2**24`` in (0, 1); normals come in pairs by the
Box-Muller transform, ``sqrt(-2 log u_1) (cos 2 pi u_2, sin 2 pi u_2)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

_M1 = 0x7FEB352D
_M2 = 0x846CA68B - (1 << 32)  # the same 32 bits as an int32
_GOLDEN = 0x9E3779B9 - (1 << 32)


def _shr(h: Any, s: int) -> Any:
    """Logical right shift of int32 ``h`` by ``s`` bits."""
    return ops.bitwise_and(ops.right_shift(h, s), (1 << (32 - s)) - 1)


def mix(h: Any) -> Any:
    """``lowbias32`` of every int32 of ``h`` (a bijection of the 32-bit integers)."""
    h = ops.bitwise_xor(h, _shr(h, 16))
    h = h * _M1
    h = ops.bitwise_xor(h, _shr(h, 15))
    h = h * _M2
    return ops.bitwise_xor(h, _shr(h, 16))


def key(*counters: Any) -> Any:
    """One int32 hash of several int32 counters (broadcast together), in order."""
    h = None
    for c in counters:
        c = ops.cast(c, "int32")
        h = mix(c + _GOLDEN) if h is None else mix(h + c)
    return h


def uniform(h: Any, dtype: str) -> Any:
    """A uniform number in (0, 1) per hash ``h``: its top 24 bits, centred in their cell."""
    return (ops.cast(_shr(h, 8), dtype) + 0.5) * (2.0**-24)


def normal(base: Any, size: int, dtype: str) -> Any:
    """Standard normal samples ``(*base.shape, size)``, a pure function of the int32 ``base``.

    Sample ``j`` of a row is the ``j % 2`` half of the Box-Muller pair
    ``j // 2``, whose uniforms are the hashes of ``(base, 2 (j // 2))`` and
    ``(base, 2 (j // 2) + 1)``: ``mix(base + mix(k))``.
    """
    pairs = (size + 1) // 2
    # both uniforms of every pair from one hash of (base, k), k = 0 .. 2 pairs - 1: a
    # pair's two are neighbours (one op per step of the hash, not one per uniform)
    h = ops.expand_dims(base, -1)
    u = uniform(mix(h + mix(ops.arange(2 * pairs, dtype="int32"))), dtype)
    shape = [-1 if d is None else d for d in base.shape]
    u = ops.reshape(u, (*shape, pairs, 2))
    radius = ops.sqrt(-2.0 * ops.log(u[..., 0]))
    angle = (2.0 * np.pi) * u[..., 1]
    both = ops.stack([radius * ops.cos(angle), radius * ops.sin(angle)], axis=-1)
    return ops.reshape(both, (*shape, 2 * pairs))[..., :size]
