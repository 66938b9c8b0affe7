"""Linear bound operations: the affine pieces every supported layer is converted into.

Each operation maps batches ``(N, *in_shape)`` to ``(N, *out_shape)`` in
``keras.ops`` (channels last) and supplies what the bounds need of it:

* ``forward(*x)``: the layer's value (with bias);
* ``linear(*x)``: its linear part ``x -> W x`` (no bias);
* ``transpose(a)``: ``W^T a`` for a batch of coefficients ``a`` (one per input),
  so that ``<a, W x> = <W^T a, x>`` (the backward pass of CROWN);
* ``bias_dot(a)``: ``<a, b>`` per row (``None`` without bias);
* ``absolute(*r)``: ``|W| r``, the radius of an interval ``c +- r`` (IBP).

Weights are callables returning tensors, read at every call (inside a compiled
function they are the model's current values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from keras import ops

Param = Callable[[], Any]


def _features(a: Any) -> tuple[int, ...]:
    return tuple(range(1, len(a.shape)))


class Linear:
    """Base class: no bias, ``absolute`` is ``linear`` (non-negative weights)."""

    kind = "linear"
    bias: Param | None = None

    def linear(self, *x: Any) -> Any:
        raise NotImplementedError

    def forward(self, *x: Any) -> Any:
        y = self.linear(*x)
        return y if self.bias is None else y + self.bias()

    def absolute(self, *r: Any) -> Any:
        return self.linear(*r)

    def bias_dot(self, a: Any) -> Any:
        return None if self.bias is None else ops.sum(a * self.bias(), axis=_features(a))

    def transpose(self, a: Any) -> tuple[Any, ...]:
        raise NotImplementedError


class Dense(Linear):
    """``x @ W + b`` on the last axis."""

    def __init__(self, kernel: Param, bias: Param | None) -> None:
        self.kernel, self.bias = kernel, bias

    def linear(self, x: Any) -> Any:
        return ops.matmul(x, self.kernel())

    def absolute(self, r: Any) -> Any:
        return ops.matmul(r, ops.abs(self.kernel()))

    def transpose(self, a: Any) -> tuple[Any, ...]:
        return (ops.matmul(a, ops.transpose(self.kernel())),)


def conv_output_size(size: int, kernel: int, stride: int, padding: str, dilation: int) -> int:
    """Output length of a convolution or pooling along one axis (TensorFlow's rule)."""
    span = (kernel - 1) * dilation + 1
    if padding == "same":
        return -(-size // stride)
    return (size - span) // stride + 1


class Conv(Linear):
    """A convolution (1, 2 or 3 spatial axes, channels last); transposed by ``conv_transpose``."""

    def __init__(
        self,
        kernel: Param,
        bias: Param | None,
        in_shape: Sequence[int],
        strides: Sequence[int],
        padding: str,
        dilation: Sequence[int],
    ) -> None:
        self.kernel, self.bias = kernel, bias
        self.strides, self.padding, self.dilation = tuple(strides), padding, tuple(dilation)
        size = kernel().shape[:-2]
        self.output_padding = []
        for n, k, s, d in zip(in_shape[:-1], size, self.strides, self.dilation):
            out = conv_output_size(n, k, s, padding, d)
            span = (k - 1) * d + 1
            self.output_padding.append(
                n - (out - 1) * s - (span if padding == "valid" else span % 2)
            )

    def _conv(self, x: Any, kernel: Any) -> Any:
        return ops.conv(x, kernel, self.strides, self.padding, dilation_rate=self.dilation)

    def linear(self, x: Any) -> Any:
        return self._conv(x, self.kernel())

    def absolute(self, r: Any) -> Any:
        return self._conv(r, ops.abs(self.kernel()))

    def transpose(self, a: Any) -> tuple[Any, ...]:
        return (
            ops.conv_transpose(
                a,
                self.kernel(),
                self.strides,
                self.padding,
                output_padding=self.output_padding,
                dilation_rate=self.dilation,
            ),
        )


class Affine(Linear):
    """``x * scale + shift``, both broadcast against the features (BatchNorm, Rescaling...)."""

    def __init__(self, scale: Param, shift: Param | None) -> None:
        self.scale, self.bias = scale, shift

    def linear(self, x: Any) -> Any:
        return x * self.scale()

    def absolute(self, r: Any) -> Any:
        return r * ops.abs(self.scale())

    def transpose(self, a: Any) -> tuple[Any, ...]:
        return (a * self.scale(),)


class Reshape(Linear):
    """A reshape of the features (Flatten, Reshape)."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    def linear(self, x: Any) -> Any:
        return ops.reshape(x, (-1, *self.out_shape))

    def transpose(self, a: Any) -> tuple[Any, ...]:
        return (ops.reshape(a, (-1, *self.in_shape)),)


class Permute(Linear):
    """A permutation of the feature axes (``perm`` numbers them from 0, without the batch)."""

    def __init__(self, perm: Sequence[int]) -> None:
        self.perm = tuple(perm)
        self.inverse = tuple(self.perm.index(i) for i in range(len(self.perm)))

    def linear(self, x: Any) -> Any:
        return ops.transpose(x, (0, *(p + 1 for p in self.perm)))

    def transpose(self, a: Any) -> tuple[Any, ...]:
        return (ops.transpose(a, (0, *(p + 1 for p in self.inverse))),)


class Pad(Linear):
    """Zero padding: ``pads`` is one ``(before, after)`` per feature axis."""

    def __init__(self, in_shape: Sequence[int], pads: Sequence[tuple[int, int]]) -> None:
        self.in_shape, self.pads = tuple(in_shape), tuple(tuple(p) for p in pads)

    def linear(self, x: Any) -> Any:
        return ops.pad(x, ((0, 0), *self.pads))

    def transpose(self, a: Any) -> tuple[Any, ...]:
        return (
            a[(slice(None), *(slice(p[0], p[0] + n) for p, n in zip(self.pads, self.in_shape)))],
        )


class Crop(Linear):
    """The block ``x[:, start : start + shape]`` (Cropping layers); transposed by zero padding."""

    def __init__(self, in_shape: Sequence[int], start: Sequence[int], shape: Sequence[int]) -> None:
        self.start, self.shape = tuple(start), tuple(shape)
        self.pads = tuple((s, n - s - m) for n, s, m in zip(in_shape, start, shape))

    def linear(self, x: Any) -> Any:
        return x[(slice(None), *(slice(s, s + m) for s, m in zip(self.start, self.shape)))]

    def transpose(self, a: Any) -> tuple[Any, ...]:
        return (ops.pad(a, ((0, 0), *self.pads)),)


class Sum(Linear):
    """``sum_i c_i x_i`` of several inputs of one shape (Add, Subtract, Average)."""

    def __init__(self, coefficients: Sequence[float]) -> None:
        self.coefficients = tuple(float(c) for c in coefficients)

    def linear(self, *x: Any) -> Any:
        out = x[0] * self.coefficients[0]
        for c, xi in zip(self.coefficients[1:], x[1:]):
            out = out + xi * c
        return out

    def absolute(self, *r: Any) -> Any:
        out = r[0] * abs(self.coefficients[0])
        for c, ri in zip(self.coefficients[1:], r[1:]):
            out = out + ri * abs(c)
        return out

    def transpose(self, a: Any) -> tuple[Any, ...]:
        return tuple(a * c for c in self.coefficients)


class Mean(Linear):
    """The mean over the spatial axes (global average pooling), channels last."""

    def __init__(self, in_shape: Sequence[int], keepdims: bool) -> None:
        self.in_shape, self.keepdims = tuple(in_shape), keepdims
        self.axes = tuple(range(1, len(in_shape)))
        self.count = 1
        for n in in_shape[:-1]:
            self.count *= n

    def linear(self, x: Any) -> Any:
        return ops.mean(x, axis=self.axes, keepdims=self.keepdims)

    def transpose(self, a: Any) -> tuple[Any, ...]:
        a = ops.reshape(a, (-1, *([1] * len(self.axes)), self.in_shape[-1]))
        return (ops.broadcast_to(a / self.count, (ops.shape(a)[0], *self.in_shape)),)
