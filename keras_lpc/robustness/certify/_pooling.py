"""Pooling windows: average pooling (linear) and max pooling (relaxed), channels last.

`Windows` lays the pooling windows of a batch ``(N, *spatial, C)`` out along a
new axis, ``(N, K, *out, C)`` with ``K`` the window size, and puts
coefficients laid out that way back (`Windows.place`, the transpose of
`Windows.extract` with zero fill). Windows that do not overlap reshape;
others slice each window offset with the stride.

Max pooling ``y = max_k x_k`` over a window whose entries lie in
``[l_k, u_k]`` is bounded below by the entry with the largest lower bound,
``y >= x_i (i = argmax_k l_k)``, and above by that entry when it dominates the
window (``l_i >= max_{k != i} u_k``), else by the constant ``max_k u_k``
(the DeepPoly / CROWN relaxation). Its Lipschitz constant in L2 is
``sqrt(m)`` with ``m`` the most windows an entry belongs to (1 without overlap).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

from keras_lpc.robustness.certify._ops import Linear, conv_output_size

#: Fill of the padding of max pooling's windows (never the maximum).
NEG = -3.0e38


class Windows:
    """The pooling windows of inputs ``(N, *in_shape)`` (see the module docstring)."""

    def __init__(
        self, in_shape: Sequence[int], pool: Sequence[int], strides: Sequence[int], padding: str
    ) -> None:
        self.in_shape, self.pool, self.strides = tuple(in_shape), tuple(pool), tuple(strides)
        spatial = self.in_shape[:-1]
        self.out = tuple(
            conv_output_size(n, k, s, padding, 1) for n, k, s in zip(spatial, pool, strides)
        )
        self.pads = []
        for n, k, s, o in zip(spatial, pool, strides, self.out):
            total = max((o - 1) * s + k - n, 0) if padding == "same" else 0
            self.pads.append((total // 2, total - total // 2))
        self.size = math.prod(pool)
        self.tiled = self.pool == self.strides and not any(sum(p) for p in self.pads)
        self.overlap = math.prod(-(-k // s) for k, s in zip(pool, strides))

    def extract(self, x: Any, fill: float = 0.0) -> Any:
        """``(N, K, *out, C)``: the windows of ``x`` (padding filled with ``fill``)."""
        r, c = len(self.out), self.in_shape[-1]
        if self.tiled:
            used = tuple(o * k for o, k in zip(self.out, self.pool))
            x = x[(slice(None), *(slice(0, u) for u in used))]
            split = [d for o, k in zip(self.out, self.pool) for d in (o, k)]
            x = ops.reshape(x, (-1, *split, c))
            order = (0, *(2 + 2 * i for i in range(r)), *(1 + 2 * i for i in range(r)), 2 * r + 1)
            return ops.reshape(ops.transpose(x, order), (-1, self.size, *self.out, c))
        if any(sum(p) for p in self.pads):
            x = ops.pad(x, ((0, 0), *self.pads, (0, 0)), constant_values=fill)
        parts = []
        for offset in itertools.product(*(range(k) for k in self.pool)):
            index = tuple(
                slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(offset, self.out, self.strides)
            )
            parts.append(x[(slice(None), *index)])
        return ops.stack(parts, axis=1)

    def place(self, a: Any) -> Any:
        """``(N, *in_shape)``: the transpose of `extract` (zero fill) applied to ``a``."""
        r, c = len(self.out), self.in_shape[-1]
        spatial = self.in_shape[:-1]
        if self.tiled:
            a = ops.reshape(a, (-1, *self.pool, *self.out, c))
            order = (0, *(d for i in range(r) for d in (1 + r + i, 1 + i)), 2 * r + 1)
            used = tuple(o * k for o, k in zip(self.out, self.pool))
            a = ops.reshape(ops.transpose(a, order), (-1, *used, c))
            rest = tuple((0, n - u) for n, u in zip(spatial, used))
            return ops.pad(a, ((0, 0), *rest, (0, 0))) if any(p[1] for p in rest) else a
        padded = tuple(n + sum(p) for n, p in zip(spatial, self.pads))
        total = None
        for k, offset in enumerate(itertools.product(*(range(k) for k in self.pool))):
            part = a[:, k]
            for axis in range(r):
                part = _dilate(part, axis + 1, self.strides[axis])
            span = tuple((n - 1) * s + 1 for n, s in zip(self.out, self.strides))
            pads = tuple((o, m - o - w) for o, m, w in zip(offset, padded, span))
            part = ops.pad(part, ((0, 0), *pads, (0, 0)))
            total = part if total is None else total + part
        index = tuple(slice(p[0], p[0] + n) for p, n in zip(self.pads, spatial))
        return total[(slice(None), *index)]


def _dilate(a: Any, axis: int, stride: int) -> Any:
    """Insert ``stride - 1`` zeros between the entries of ``a`` along ``axis``."""
    if stride == 1:
        return a
    n = a.shape[axis]
    stacked = ops.stack([a] + [ops.zeros_like(a)] * (stride - 1), axis=axis + 1)
    shape = [-1, *a.shape[1:]]
    shape[axis] = n * stride
    out = ops.reshape(stacked, shape)
    return out[(slice(None),) * axis + (slice(0, (n - 1) * stride + 1),)]


class AveragePool(Linear):
    """Average pooling: the mean of each window's entries that are not padding."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        ones = np.ones((1, *windows.in_shape), "float32")
        count = np.sum(ops.convert_to_numpy(windows.extract(ones)), axis=1)
        self.inverse = (1.0 / count).astype("float32")

    def linear(self, x: Any) -> Any:
        return ops.sum(self.windows.extract(x), axis=1) * ops.convert_to_tensor(self.inverse)

    def transpose(self, a: Any) -> tuple[Any, ...]:
        a = ops.expand_dims(a * ops.convert_to_tensor(self.inverse), 1)
        shape = (ops.shape(a)[0], self.windows.size, *a.shape[2:])
        return (self.windows.place(ops.broadcast_to(a, shape)),)


class MaxPool:
    """Max pooling, relaxed as in the module docstring."""

    kind = "maxpool"

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self.lipschitz = math.sqrt(windows.overlap)

    def forward(self, x: Any) -> Any:
        return ops.max(self.windows.extract(x, NEG), axis=1)

    def interval(self, lower: Any, upper: Any) -> tuple[Any, Any]:
        return self.forward(lower), self.forward(upper)

    def relax(self, lower: Any, upper: Any) -> tuple[Any, Any, Any]:
        """``(lower mask, upper mask, upper constant)``, masks ``(B, K, *out, C)``."""
        low, up = self.windows.extract(lower, NEG), self.windows.extract(upper, NEG)
        pick = ops.one_hot(ops.argmax(low, axis=1), self.windows.size, axis=1, dtype=low.dtype)
        others = ops.max(ops.where(pick > 0, NEG, up), axis=1)
        dominant = ops.max(low, axis=1) >= others
        upper_mask = pick * ops.cast(ops.expand_dims(dominant, 1), pick.dtype)
        return pick, upper_mask, ops.where(dominant, 0.0, ops.max(up, axis=1))

    def tangent(self, x: Any) -> tuple[Any, Any, Any]:
        return self.relax(x, x)

    def back(self, relaxation: tuple[Any, Any, Any], a: Any) -> tuple[Any, Any]:
        """Coefficients ``(M, B, *in)`` of the input and the constant ``(M, B)`` for ``a``."""
        pick, upper_mask, constant = relaxation
        positive, negative = ops.maximum(a, 0.0), ops.minimum(a, 0.0)
        spread = (
            ops.expand_dims(positive, 2) * pick[None]
            + ops.expand_dims(negative, 2) * upper_mask[None]
        )
        m = a.shape[0]
        placed = self.windows.place(ops.reshape(spread, (-1, *spread.shape[2:])))
        const = ops.sum(negative * constant[None], axis=tuple(range(2, len(a.shape))))
        return ops.reshape(placed, (m, -1, *self.windows.in_shape)), const
