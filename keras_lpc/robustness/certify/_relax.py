"""Sound linear bounds of an activation on an interval (the relaxations of CROWN).

For ``z`` in ``[l, u]`` each relaxation returns slopes and intercepts with::

    a_l z + b_l  <=  f(z)  <=  a_u z + b_u        for every z in [l, u]

ReLU / LeakyReLU (Zhang et al. 2018): the chord above, below a line through
the kink with the slope of the longer side (``1`` if ``u >= -l``, else the
negative slope); exact where the interval does not contain 0.

Smooth activations: a few candidate lines (the chord and the tangents at seven
points of ``[l, u]``) are each made valid by moving them up (upper bound) or
down (lower bound) by their largest violation, and the one enclosing the least
area (``(u - l) * line((l + u) / 2)``) is kept. The largest violation of a line
``a z + b`` is found exactly, piece by piece between inflection points: where
``g = f - line`` (upper) is convex its maximum is at an end of the piece;
where it is concave ``g'`` decreases and a bisection on its sign brackets the
maximiser ``z*`` in ``[lo, hi]``, so that ``g(z*) <= g(lo) + g'(lo) (hi - lo)``
(concavity). Every bound is therefore proved for the whole interval, not
sampled, up to float32 rounding, which a margin of ``8 * 2^-23`` times the
values' scale covers. The chord and the tangent at the midpoint are the
classical choices (the chord is optimal where it is valid, a tangent where
the function is convex or concave throughout).
"""

from __future__ import annotations

from typing import Any

from keras import ops

from keras_lpc.robustness.certify._activations import Leaky, Smooth, interval

#: Points of [l, u] (as fractions) whose tangents are candidate lines (the midpoint first:
#: it wins ties, so a point interval gets its tangent, the linearisation).
TANGENTS = (0.5, 0.0, 1 / 6, 2 / 6, 4 / 6, 5 / 6, 1.0)
#: Bisection steps locating a maximiser inside a piece (bracket shrinks 2^-20).
STEPS = 20
_ULP = 8 * 2.0**-23


def leaky(spec: Leaky, lower: Any, upper: Any) -> tuple[Any, Any, Any, Any]:
    """``(a_l, b_l, a_u, b_u)`` for ``z if z > 0 else s z`` on ``[lower, upper]``."""
    s = spec.slope
    width = ops.maximum(upper - lower, 1e-30)
    chord = (spec.f(upper) - spec.f(lower)) / width
    chord_b = spec.f(lower) - chord * lower
    neg, pos = upper <= 0, lower >= 0
    longer = ops.where(upper >= -lower, 1.0, s)
    exact = ops.where(neg, s, 1.0)
    slope = ops.where(neg | pos, exact, longer)
    chord = ops.where(neg | pos, exact, chord)
    reach = ops.maximum(ops.abs(lower), ops.abs(upper))
    rounding = _ULP * (1.0 + ops.abs(chord_b) + ops.abs(chord) * reach)
    chord_b = ops.where(neg | pos, 0.0, chord_b + (rounding if s <= 1 else -rounding))
    zero = ops.zeros_like(lower)
    if s <= 1:  # convex: chord above, a line through the kink below
        return slope, zero, chord, chord_b
    return chord, chord_b, slope, zero  # concave


def _peak(h: Any, dh: Any, p: Any, q: Any, concave: bool) -> Any:
    """An upper bound of ``max h`` over ``[p, q]`` (elementwise), ``h`` convex or concave there."""
    top = ops.maximum(h(p), h(q))
    if not concave:
        return top

    def halve(_: Any, bracket: tuple[Any, Any]) -> tuple[Any, Any]:
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        up = dh(mid) >= 0
        return ops.where(up, mid, lo), ops.where(up, hi, mid)

    lo, hi = ops.fori_loop(0, STEPS, halve, (p, q))
    return ops.maximum(top, h(lo) + ops.maximum(dh(lo), 0.0) * (hi - lo))


def violations(spec: Smooth, lower: Any, upper: Any, a: Any, b: Any) -> tuple[Any, Any]:
    """``(max (f - line), max (line - f))`` over ``[lower, upper]`` for lines ``a z + b``."""
    f, df = spec.f, spec.df
    zeros = ops.zeros_like(a * lower)
    lower, upper = lower + zeros, upper + zeros  # one shape for the bisection loops
    over, under = None, None
    edges = (None, *spec.breaks, None)
    for i, convex in enumerate(spec.convex):
        p = lower if edges[i] is None else ops.maximum(lower, edges[i])
        q = upper if edges[i + 1] is None else ops.minimum(upper, edges[i + 1])
        empty = p > q
        q = ops.maximum(p, q)
        up = _peak(lambda z: f(z) - a * z - b, lambda z: df(z) - a, p, q, not convex)
        down = _peak(lambda z: a * z + b - f(z), lambda z: a - df(z), p, q, convex)
        up, down = ops.where(empty, -1e30, up), ops.where(empty, -1e30, down)
        over = up if over is None else ops.maximum(over, up)
        under = down if under is None else ops.maximum(under, down)
    return over, under


def smooth(spec: Smooth, lower: Any, upper: Any) -> tuple[Any, Any, Any, Any]:
    """``(a_l, b_l, a_u, b_u)`` for a smooth activation on ``[lower, upper]``."""
    f, df = spec.f, spec.df
    lower, upper = ops.convert_to_tensor(lower), ops.convert_to_tensor(upper)
    width = upper - lower
    fl, fu = f(lower), f(upper)
    slopes, intercepts = [], []
    for t in TANGENTS:
        z = lower + width * t
        slopes.append(df(z))
        intercepts.append(f(z) - df(z) * z)
    chord = ops.where(width > 0, (fu - fl) / ops.maximum(width, 1e-30), slopes[0])
    slopes.append(chord)
    intercepts.append(fl - chord * lower)
    a, b = ops.stack(slopes), ops.stack(intercepts)  # (G, ...)
    over, under = violations(spec, lower[None], upper[None], a, b)
    reach = ops.maximum(ops.abs(lower), ops.abs(upper))[None]
    margin = _ULP * (1.0 + ops.abs(b) + ops.abs(a) * reach + ops.maximum(ops.abs(fl), ops.abs(fu)))
    b_up = b + ops.maximum(over, 0.0) + margin
    b_low = b - ops.maximum(under, 0.0) - margin
    mid = (0.5 * (lower + upper))[None]
    best_up = ops.expand_dims(ops.argmin(a * mid + b_up, axis=0), 0)
    best_low = ops.expand_dims(ops.argmax(a * mid + b_low, axis=0), 0)

    def pick(values: Any, index: Any) -> Any:
        return ops.take_along_axis(values, index, axis=0)[0]

    return pick(a, best_low), pick(b_low, best_low), pick(a, best_up), pick(b_up, best_up)


def relax(spec: Smooth | Leaky, lower: Any, upper: Any) -> tuple[Any, Any, Any, Any]:
    """``(a_l, b_l, a_u, b_u)``: linear bounds of ``spec`` valid on ``[lower, upper]``."""
    if isinstance(spec, Leaky):
        return leaky(spec, lower, upper)
    return smooth(spec, lower, upper)


def tangent(spec: Smooth | Leaky, z: Any) -> tuple[Any, Any, Any, Any]:
    """The relaxation on the point interval ``[z, z]``: the tangent, as both bounds."""
    if isinstance(spec, Leaky):
        slope = ops.where(z > 0, 1.0, spec.slope)
        zero = ops.zeros_like(z)
        return slope, zero, slope, zero
    slope = spec.df(z)
    intercept = spec.f(z) - slope * z
    return slope, intercept, slope, intercept


class Activation:
    """An elementwise activation as a bound operation (`relax` above, `interval` of its spec)."""

    kind = "act"

    def __init__(self, spec: Smooth | Leaky) -> None:
        self.spec, self.lipschitz = spec, spec.lipschitz

    def forward(self, x: Any) -> Any:
        return self.spec.f(x)

    def interval(self, lower: Any, upper: Any) -> tuple[Any, Any]:
        return interval(self.spec, lower, upper)

    def relax(self, lower: Any, upper: Any) -> tuple[Any, Any, Any, Any]:
        return relax(self.spec, lower, upper)

    def tangent(self, z: Any) -> tuple[Any, Any, Any, Any]:
        return tangent(self.spec, z)

    def back(self, relaxation: tuple[Any, Any, Any, Any], a: Any) -> tuple[Any, Any]:
        """Coefficients of the input ``(M, B, ...)`` and the constant ``(M, B)`` for ``a``:
        the lower bound of ``<a, f(z)>`` is ``<a_in, z> + const``."""
        a_l, b_l, a_u, b_u = relaxation
        positive, negative = ops.maximum(a, 0.0), ops.minimum(a, 0.0)
        const = ops.sum(positive * b_l + negative * b_u, axis=tuple(range(2, len(a.shape))))
        return positive * a_l + negative * a_u, const
