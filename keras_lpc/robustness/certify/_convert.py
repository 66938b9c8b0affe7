"""Keras layers to bound operations (`to_graph`): the supported layers and how each is read.

=========================================  ========================================
layer                                      operations
=========================================  ========================================
Dense, LatentPointCollapse (its projection) Dense (+ its activation)
Conv1D/2D/3D (same, valid, causal padding)  Conv (+ its activation); causal = Pad + valid
BatchNormalization (inference)             Affine, folded into the Dense / Conv before it
Rescaling, Normalization                   Affine
Activation, ReLU, LeakyReLU                activations of ``_activations.SUPPORTED``
Add, Subtract, Average (and ``x + y``)      Sum
Flatten, Reshape, Permute                  Reshape / Permute
ZeroPadding1D/2D/3D, Cropping1D/2D/3D       Pad / Crop
AveragePooling1D/2D/3D, GlobalAverage...    AveragePool / Mean
MaxPooling1D/2D/3D, GlobalMaxPooling...     MaxPool (relaxed)
Dropout, noise, ActivityRegularization,     nothing (identity at inference)
Identity, InputLayer, LPC with dim=None
a softmax on the output                    nothing: the logits before it are certified
=========================================  ========================================

``channels_first`` layers are wrapped in Permutes. Sequential and functional
models, nested ones too, are flattened by `keras_lpc._models.graph_nodes`.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lpc._models import graph_nodes
from keras_lpc.layers import LatentPointCollapse
from keras_lpc.robustness._core import _softmax_kind
from keras_lpc.robustness.certify import _ops
from keras_lpc.robustness.certify._activations import Leaky, lookup
from keras_lpc.robustness.certify._graph import BoundGraph, Builder
from keras_lpc.robustness.certify._pooling import AveragePool, MaxPool, Windows
from keras_lpc.robustness.certify._relax import Activation

METHODS = ("lipschitz", "ibp", "crown")
L = keras.layers
_IDENTITY = (
    L.Dropout,
    L.SpatialDropout1D,
    L.SpatialDropout2D,
    L.SpatialDropout3D,
    L.GaussianNoise,
    L.GaussianDropout,
    L.AlphaDropout,
    L.ActivityRegularization,
    L.Identity,
)
_CONV = (L.Conv1D, L.Conv2D, L.Conv3D)
_POOL = (
    L.MaxPooling1D,
    L.MaxPooling2D,
    L.MaxPooling3D,
    L.AveragePooling1D,
    L.AveragePooling2D,
    L.AveragePooling3D,
)
_GLOBAL = (
    L.GlobalAveragePooling1D,
    L.GlobalAveragePooling2D,
    L.GlobalAveragePooling3D,
    L.GlobalMaxPooling1D,
    L.GlobalMaxPooling2D,
    L.GlobalMaxPooling3D,
)


class Unsupported(ValueError):
    """A layer the bounds cannot handle."""


def _weight(value: Any, dtype: str):
    return lambda: ops.cast(value, dtype)


def _constant(value: Any, dtype: str):
    array = np.asarray(ops.convert_to_numpy(value), dtype=dtype)
    return lambda: ops.convert_to_tensor(array)


class _Converter:
    def __init__(self, model: Any, dtype: str) -> None:
        self.model, self.dtype = model, dtype
        self.b = Builder(tuple(model.inputs[0].shape[1:]), dtype)

    def fail(self, layer: Any, why: str = "") -> None:
        raise Unsupported(
            f"`model` has a layer the certified bounds cannot handle: {layer.name!r} "
            f"({type(layer).__name__}{', ' + why if why else ''}); the methods "
            f"{', '.join(repr(m) for m in METHODS)} cannot bound it. Supported: Dense, Conv1D/2D/3D, "
            "BatchNormalization, activations (relu, leaky_relu, silu, gelu, tanh, sigmoid), "
            "Add/Subtract/Average, Flatten/Reshape/Permute, pooling, padding/cropping, "
            "Dropout-like, Rescaling/Normalization, LatentPointCollapse. "
            f"Received: model={self.model.name!r}"
        )

    def activation(self, layer: Any, activation: Any, x: int, output: bool) -> int:
        spec = lookup(activation)
        if spec is None or (spec == "softmax" and output):
            return x
        if isinstance(spec, str):
            self.fail(layer, f"activation {getattr(activation, '__name__', activation)!r}")
        return self.b.add(Activation(spec), [x])

    def channels_last(self, layer: Any, x: int, build) -> int:
        """``build(x)`` in channels-last order, wrapped in Permutes for channels_first."""
        if getattr(layer, "data_format", "channels_last") != "channels_first":
            return build(x)
        rank = len(self.b.shapes[x])
        x = self.b.add(_ops.Permute((*range(1, rank), 0)), [x])
        y = build(x)
        rank = len(self.b.shapes[y])
        return self.b.add(_ops.Permute((rank - 1, *range(rank - 1))), [y])

    def conv(self, layer: Any, x: int) -> int:
        if layer.groups != 1:
            self.fail(layer, f"groups={layer.groups}")
        padding = layer.padding
        if padding == "causal":
            span = (layer.kernel_size[0] - 1) * layer.dilation_rate[0]
            pads = [(span, 0), (0, 0)]
            x = self.b.add(_ops.Pad(self.b.shapes[x], pads), [x])
            padding = "valid"
        bias = _weight(layer.bias, self.dtype) if layer.use_bias else None
        op = _ops.Conv(
            _weight(layer.kernel, self.dtype),
            bias,
            self.b.shapes[x],
            layer.strides,
            padding,
            layer.dilation_rate,
        )
        return self.b.add(op, [x])

    def pool(self, layer: Any, x: int) -> int:
        shape = self.b.shapes[x]
        if isinstance(layer, _GLOBAL):
            windows = Windows(shape, shape[:-1], shape[:-1], "valid")
            if "Max" in type(layer).__name__:
                y = self.b.add(MaxPool(windows), [x])
                if layer.keepdims:
                    return y
                return self.b.add(_ops.Reshape(self.b.shapes[y], (shape[-1],)), [y])
            return self.b.add(_ops.Mean(shape, layer.keepdims), [x])
        windows = Windows(shape, layer.pool_size, layer.strides, layer.padding)
        pool = MaxPool(windows) if "Max" in type(layer).__name__ else AveragePool(windows)
        return self.b.add(pool, [x])

    def affine(self, layer: Any, x: int) -> int:
        d, shape = self.dtype, self.b.shapes[x]
        if isinstance(layer, L.BatchNormalization):
            axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
            axes = [a % (len(shape) + 1) - 1 for a in axes]
            broadcast = [shape[i] if i in axes else 1 for i in range(len(shape))]
            gamma, beta = layer.gamma, layer.beta
            mean, var, eps = layer.moving_mean, layer.moving_variance, layer.epsilon

            def scale():
                s = ops.rsqrt(ops.cast(var, d) + eps)
                return ops.reshape(s if gamma is None else s * ops.cast(gamma, d), broadcast)

            def shift():
                t = -ops.reshape(ops.cast(mean, d), broadcast) * scale()
                return t if beta is None else t + ops.reshape(ops.cast(beta, d), broadcast)

            return self.b.add(_ops.Affine(scale, shift), [x])
        if isinstance(layer, L.Rescaling):
            return self.b.add(
                _ops.Affine(_constant(layer.scale, d), _constant(layer.offset, d)), [x]
            )
        mean = np.asarray(ops.convert_to_numpy(layer.mean), "float64")
        std = np.maximum(np.sqrt(np.asarray(ops.convert_to_numpy(layer.variance))), 1e-7)
        if layer.invert:
            op = _ops.Affine(_constant(std[0], d), _constant(mean[0], d))
        else:
            op = _ops.Affine(_constant(1.0 / std[0], d), _constant(-mean[0] / std[0], d))
        return self.b.add(op, [x])

    def reshape(self, layer: Any, x: int) -> int:
        shape = self.b.shapes[x]
        if isinstance(layer, L.Flatten):
            if getattr(layer, "_channels_first", False) and len(shape) > 1:
                x = self.b.add(_ops.Permute((*range(1, len(shape)), 0)), [x])
            return self.b.add(_ops.Reshape(self.b.shapes[x], (math.prod(shape),)), [x])
        if isinstance(layer, L.Permute):
            return self.b.add(_ops.Permute([d - 1 for d in layer.dims]), [x])
        target = layer.compute_output_shape((None, *shape))[1:]
        return self.b.add(_ops.Reshape(shape, tuple(int(t) for t in target)), [x])

    def pad_or_crop(self, layer: Any, x: int) -> int:
        rank = len(self.b.shapes[x]) - 1
        if isinstance(layer, (L.ZeroPadding1D, L.Cropping1D)):
            amounts = [getattr(layer, "padding", None) or layer.cropping]
        else:
            amounts = list(getattr(layer, "padding", None) or layer.cropping)
        amounts = [tuple(int(v) for v in a) for a in amounts][:rank]

        def build(x: int) -> int:
            shape = self.b.shapes[x]
            pairs = [*amounts, (0, 0)]
            if "Padding" in type(layer).__name__:
                return self.b.add(_ops.Pad(shape, pairs), [x])
            start = [a for a, _ in pairs]
            size = [n - a - b for n, (a, b) in zip(shape, pairs)]
            return self.b.add(_ops.Crop(shape, start, size), [x])

        return self.channels_last(layer, x, build)

    def layer(self, layer: Any, inputs: tuple[int, ...], output: bool) -> int:
        b, d = self.b, self.dtype
        if isinstance(layer, _IDENTITY) or (
            isinstance(layer, LatentPointCollapse) and layer.projection is None
        ):
            return inputs[0]
        if isinstance(layer, LatentPointCollapse):
            layer = layer.projection
        if isinstance(layer, L.Dense):
            if getattr(layer, "quantization_mode", None):
                self.fail(layer, "quantized")
            bias = _weight(layer.bias, d) if layer.use_bias else None
            x = b.add(_ops.Dense(_weight(layer.kernel, d), bias), inputs)
            return self.activation(layer, layer.activation, x, output)
        if isinstance(layer, _CONV):
            x = self.channels_last(layer, inputs[0], lambda x: self.conv(layer, x))
            return self.activation(layer, layer.activation, x, output)
        if isinstance(layer, (L.BatchNormalization, L.Rescaling, L.Normalization)):
            return self.affine(layer, inputs[0])
        if isinstance(layer, L.Activation):
            return self.activation(layer, layer.activation, inputs[0], output)
        if isinstance(layer, L.ReLU) and layer.max_value is None and layer.threshold == 0:
            return b.add(Activation(Leaky(float(layer.negative_slope))), inputs)
        if isinstance(layer, L.LeakyReLU):
            return b.add(Activation(Leaky(float(layer.negative_slope))), inputs)
        if _softmax_kind(layer) == "input" and output:
            return inputs[0]
        if isinstance(layer, (L.Add, L.Subtract, L.Average)) or (
            type(layer).__name__ in ("Add", "Subtract")
            and type(layer).__module__.startswith("keras.src.ops")
            and len(inputs) == 2
        ):
            n = len(inputs)
            kind = type(layer).__name__
            coefficients = (
                (1.0, -1.0) if kind == "Subtract" else (1.0 / n if kind == "Average" else 1.0,) * n
            )
            return b.add(_ops.Sum(coefficients), inputs)
        if isinstance(layer, (L.Flatten, L.Reshape, L.Permute)):
            return self.reshape(layer, inputs[0])
        if isinstance(layer, (L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D)) or isinstance(
            layer, (L.Cropping1D, L.Cropping2D, L.Cropping3D)
        ):
            return self.pad_or_crop(layer, inputs[0])
        if isinstance(layer, _POOL + _GLOBAL):
            return self.channels_last(layer, inputs[0], lambda x: self.pool(layer, x))
        self.fail(layer)
        raise AssertionError  # unreachable


def to_graph(model: Any, dtype: str = "float32") -> BoundGraph:
    """``model`` as a `BoundGraph` computing its pre-softmax scores, flattened to (N, C).

    Raises:
        ValueError: a subclassed model, several inputs or outputs, fewer than 2
            classes, or a layer no method can handle (named, with its class).
    """
    graph = graph_nodes(model)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ValueError(
            "`model` must have one input and one output to be certified. Received: "
            f"model={model.name!r} with {len(graph.inputs)} inputs, {len(graph.outputs)} outputs"
        )
    convert = _Converter(model, dtype)
    ids = {graph.inputs[0]: 0}
    for node in graph.nodes:
        inputs = tuple(ids[i] for i in node.inputs)
        ids[node.output] = convert.layer(node.layer, inputs, node.output == graph.outputs[0])
    out = ids[graph.outputs[0]]
    if len(convert.b.shapes[out]) != 1:
        shape = convert.b.shapes[out]
        out = convert.b.add(_ops.Reshape(shape, (math.prod(shape),)), [out])
    bound = convert.b.graph(out, model.name)
    if bound.classes < 2:
        raise ValueError(
            "`model` must output at least 2 class scores. "
            f"Received: model={model.name!r} with {bound.classes} output"
        )
    return bound
