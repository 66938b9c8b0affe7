"""The activations the bounds support, each described by what its relaxation needs.

A smooth activation is given by ``f`` and ``f'`` (``keras.ops``, and float64
NumPy twins), its inflection points ``breaks`` and whether ``f`` is convex on
each piece between them, its Lipschitz constant ``max |f'|`` and, if it is not
increasing, the point of its single minimum. With that,
`keras_lpc.robustness.certify._relax` builds linear bounds on any interval and
proves them (the largest violation of a line is found exactly on each convex
or concave piece). ReLU and LeakyReLU are exact piecewise-linear cases.

=========  ==========================  ============================  ===========
name       f(z)                        convexity (pieces)            max |f'|
=========  ==========================  ============================  ===========
relu       max(z, 0)                   convex                        1
leaky      z if z > 0 else a z         convex (a <= 1), concave      max(1, |a|)
sigmoid    1 / (1 + e^-z)              convex | concave at 0         0.25
tanh       tanh z                      convex | concave at 0         1
silu       z sigmoid(z)                concave | convex | concave    1.0998
gelu       z Phi(z) (exact, erf)       concave | convex | concave    1.1289
=========  ==========================  ============================  ===========

SiLU's inflection points solve ``z tanh(z / 2) = 2`` (z = +-2.39936), GELU's are
``+-sqrt(2)``; their minima are at z = -1.27846 (SiLU) and -0.75179 (GELU).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops
from scipy import special


def _root(fn: Callable[[float], float], lo: float, hi: float) -> float:
    """A root of ``fn`` in ``[lo, hi]`` (opposite signs at the ends) by float64 bisection."""
    flo = fn(lo)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (fn(mid) > 0) == (flo > 0):
            lo, flo = mid, fn(mid)
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Smooth:
    """A smooth activation (see the module docstring)."""

    name: str
    f: Callable
    df: Callable
    f64: Callable
    df64: Callable
    breaks: tuple[float, ...]
    convex: tuple[bool, ...]
    lipschitz: float
    argmin: float | None = None


@dataclass(frozen=True)
class Leaky:
    """``z if z > 0 else slope * z`` (ReLU: ``slope = 0``)."""

    slope: float = 0.0

    @property
    def name(self) -> str:
        return "relu" if self.slope == 0 else f"leaky_relu({self.slope:g})"

    @property
    def lipschitz(self) -> float:
        return max(1.0, abs(self.slope))

    def f(self, z):
        return ops.where(z > 0, z, z * self.slope)

    def f64(self, z):
        return np.where(z > 0, z, z * self.slope)


def _sig64(z):
    return special.expit(z)


def _silu_d(z):
    s = ops.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _silu_d64(z):
    s = _sig64(z)
    return s * (1.0 + z * (1.0 - s))


_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu(z):
    return 0.5 * z * (1.0 + ops.erf(z / _SQRT2))


def _gelu_d(z):
    return 0.5 * (1.0 + ops.erf(z / _SQRT2)) + z * ops.exp(-0.5 * z * z) * _INV_SQRT_2PI


def _gelu64(z):
    return 0.5 * z * (1.0 + special.erf(z / _SQRT2))


def _gelu_d64(z):
    return 0.5 * (1.0 + special.erf(z / _SQRT2)) + z * np.exp(-0.5 * z * z) * _INV_SQRT_2PI


_SILU_BREAK = _root(lambda z: z * math.tanh(z / 2.0) - 2.0, 1.0, 4.0)

SIGMOID = Smooth(
    "sigmoid",
    ops.sigmoid,
    lambda z: ops.sigmoid(z) * (1.0 - ops.sigmoid(z)),
    _sig64,
    lambda z: _sig64(z) * (1.0 - _sig64(z)),
    (0.0,),
    (True, False),
    0.25,
)
TANH = Smooth(
    "tanh",
    ops.tanh,
    lambda z: 1.0 - ops.tanh(z) ** 2,
    np.tanh,
    lambda z: 1.0 - np.tanh(z) ** 2,
    (0.0,),
    (True, False),
    1.0,
)
SILU = Smooth(
    "silu",
    ops.silu,
    _silu_d,
    lambda z: z * _sig64(z),
    _silu_d64,
    (-_SILU_BREAK, _SILU_BREAK),
    (False, True, False),
    float(_silu_d64(_SILU_BREAK)),
    _root(lambda z: float(_silu_d64(z)), -2.0, -1.0),
)
GELU = Smooth(
    "gelu",
    _gelu,
    _gelu_d,
    _gelu64,
    _gelu_d64,
    (-_SQRT2, _SQRT2),
    (False, True, False),
    float(_gelu_d64(_SQRT2)),
    _root(lambda z: float(_gelu_d64(z)), -1.5, -0.3),
)

_BY_NAME = {"sigmoid": SIGMOID, "tanh": TANH, "silu": SILU, "swish": SILU, "gelu": GELU}
#: Activation names `lookup` knows besides ``linear`` and ``softmax`` (the output's).
SUPPORTED = ("relu", "leaky_relu", "sigmoid", "tanh", "silu", "swish", "gelu")


def lookup(activation: Callable | None) -> Smooth | Leaky | str | None:
    """The spec of a Keras activation function: ``None`` (linear), ``"softmax"``, a
    `Smooth` or `Leaky` spec, or ``"unsupported"``."""
    if activation is None:
        return None
    name = getattr(activation, "__name__", "")
    if activation is keras.activations.linear or name == "linear":
        return None
    if name == "softmax":
        return "softmax"
    if activation is keras.activations.relu or name == "relu":
        return Leaky(0.0)
    if activation is keras.activations.leaky_relu or name == "leaky_relu":
        return Leaky(0.2)  # keras.activations.leaky_relu's default negative_slope
    if name in _BY_NAME and getattr(keras.activations, name, None) is activation:
        return _BY_NAME[name]
    return "unsupported"


def interval(spec: Smooth | Leaky, lower, upper):
    """``(min, max)`` of the activation over ``[lower, upper]`` (elementwise)."""
    fl, fu = spec.f(lower), spec.f(upper)
    if isinstance(spec, Leaky):
        if spec.slope >= 0:
            return fl, fu
        low = ops.minimum(ops.minimum(fl, fu), ops.where((lower < 0) & (upper > 0), 0.0, fu))
        return low, ops.maximum(fl, fu)
    if spec.argmin is None:
        return fl, fu
    inside = (lower < spec.argmin) & (upper > spec.argmin)
    lowest = float(spec.f64(spec.argmin)) * (1.0 + 1e-6)  # below its float32 rounding
    low = ops.where(inside, lowest, ops.minimum(fl, fu))
    return low, ops.maximum(fl, fu)
