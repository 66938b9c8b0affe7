"""The search for the largest certified radius, one compiled ``keras.ops`` loop per batch.

A pass at radius ``eps`` (`keras_lpc.robustness.certify._crown.probe`) gives
per input ``g(eps) = min_j c_j / d_j``: every ``eps' < min(eps, g(eps))`` is
certified (``c_j - eps' d_j > 0``). So each pass certifies ``max(0, min(eps,
g(eps)))`` whatever its outcome. ``g`` falls as ``eps`` grows (the
relaxations loosen), continuously, through 0 where some ``c_j`` turns
negative, and the method's radius is the root of ``phi(eps) = g(eps) - eps``
(``g`` floored at ``-2 eps``). The search keeps a bracket ``[a, b]`` with
``phi(a) >= 0 > phi(b)``, starting from ``a = 0``, ``phi(0) = g(0)`` (the
linearisation's radius, `crossing` of a point pass) and a first pass at
``g(0)``:

* the next radius is the root of the model ``g(e) = g(0) - A e^p`` through
  the last two passes (``p = 2`` after one: for smooth activations the
  relaxations' slack grows like the square of the interval's width), kept 2 %
  inside the bracket; outside it, regula falsi; the geometric midpoint
  whenever the bracket did not halve (log scale) over the last pass;
* where ``g`` says nothing (IBP without a linear path from the input: ``g``
  infinite or very negative), ``4 eps`` until a pass fails, then the
  geometric midpoint.

The loop runs on the device until every input's bracket is within ``rtol``
(relative; ``g(a)`` also bounds the root from above) or ``steps`` passes were
made; nothing crosses to the host. A linear model needs one pass: ``g`` is the
exact distance at every radius.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras import ops

BIG = 1e30


def crossing(c: Any, d: Any, labels: Any, classes: int) -> Any:
    """``g``: ``min_{j != y} c_j / d_j`` per input, ``(B,)``, negative where some ``c_j < 0``
    (then nothing is certified); ``BIG`` where no ``d_j > 0`` limits it, ``-BIG`` where
    ``c_j <= 0 = d_j``. ``c``, ``d``: ``(C, B)`` (row j: ``f_y - f_j``)."""
    own = ops.transpose(ops.one_hot(labels, classes, dtype="bool"))
    ratio = c / ops.maximum(d, 1e-30)
    ratio = ops.where(d > 0, ratio, ops.where(c > 0, BIG, -BIG))
    ratio = ops.where(own, BIG, ops.clip(ratio, -BIG, BIG))
    return ops.min(ratio, axis=0)


def _model_root(u0: Any, amplitude: Any, power: Any) -> Any:
    """The root in ``(0, u0)`` of ``u0 - amplitude x^power - x`` (bisection, elementwise)."""

    def halve(_: Any, bracket: tuple[Any, Any]) -> tuple[Any, Any]:
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        above = u0 - amplitude * ops.power(mid, power) - mid > 0
        return ops.where(above, mid, lo), ops.where(above, hi, mid)

    lo, hi = ops.fori_loop(0, 40, halve, (ops.zeros_like(u0), u0))
    return 0.5 * (lo + hi)


def search(probe: Callable[[Any], Any], first: Any, rtol: float, steps: int) -> tuple[Any, Any]:
    """``(certified radius (B,), passes)``: the loop of the module docstring.

    ``probe(eps) -> g(eps)`` (B,); ``first`` (B,): ``g(0)`` (0 or less: nothing
    to certify, e.g. a misclassified input).
    """
    live = first > 0
    zeros = ops.zeros_like(first)
    u0 = ops.where(live, ops.minimum(first, BIG), 1.0)
    state = (
        ops.convert_to_tensor(0, "int32"),
        u0,  # eps: the next radius
        zeros,  # lo: certified so far
        zeros,  # a: phi(a) >= 0
        u0,  # phi(a)
        ops.where(live, BIG, 0.0),  # b: phi(b) < 0
        zeros,  # phi(b)
        ops.where(live, BIG, 0.0),  # top: smallest g(a) seen (bounds the root)
        zeros,  # e1, g1: the informative pass before the last one
        zeros,
        zeros,  # e2, g2: the last informative pass
        zeros,
        zeros,  # how many informative passes
        ops.where(live, BIG, 0.0),  # the bracket's log-width after the previous pass
    )

    def open_(lo: Any, b: Any, top: Any) -> Any:
        return ops.minimum(b, top) > lo * (1.0 + rtol)

    def cond(k, eps, lo, a, fa, b, fb, top, e1, g1, e2, g2, count, width):
        return ops.logical_and(k < steps, ops.any(open_(lo, b, top)))

    def body(k, eps, lo, a, fa, b, fb, top, e1, g1, e2, g2, count, width):
        active = open_(lo, b, top)
        g = probe(eps)
        phi = ops.maximum(g, -2.0 * eps) - eps  # g < 0: nothing certified, c_j < 0
        ok = phi >= 0
        lo_n = ops.maximum(lo, ops.minimum(eps, ops.maximum(g, 0.0)))
        top_n = ops.where(ok, ops.minimum(top, g), top)
        a_n, fa_n = ops.where(ok, eps, a), ops.where(ok, phi, fa)
        b_n, fb_n = ops.where(ok, b, eps), ops.where(ok, fb, phi)
        # the model g(e) = u0 - A e^p through the last two informative passes (p = 2 from one)
        informative = (g < u0) & (g > -BIG * 1e-6)
        e1_n, g1_n = ops.where(informative, e2, e1), ops.where(informative, g2, g1)
        e2_n, g2_n = ops.where(informative, eps, e2), ops.where(informative, g, g2)
        count_n = count + ops.cast(informative, count.dtype)
        two = (count_n >= 2) & (ops.abs(e1_n - e2_n) > 1e-12 * e2_n)
        ratio = ops.where(two, (u0 - g1_n) / ops.maximum(u0 - g2_n, 1e-30), 2.0)
        power = ops.log(ops.maximum(ratio, 1e-30)) / ops.log(
            ops.where(two, ops.maximum(e1_n, 1e-30) / ops.maximum(e2_n, 1e-30), 2.0)
        )
        power = ops.where(two & ops.isfinite(power), ops.clip(power, 0.5, 8.0), 2.0)
        amplitude = (u0 - g2_n) / ops.power(ops.maximum(e2_n, 1e-30), power)
        modelled = _model_root(u0, amplitude, power)
        falsi = a_n + (b_n - a_n) * fa_n / ops.maximum(fa_n - fb_n, 1e-30)
        geometric = ops.where(a_n > 0, ops.sqrt(ops.maximum(a_n, 1e-30) * b_n), b_n * 0.25)
        unbounded = b_n >= BIG
        low, high = a_n + 0.02 * (b_n - a_n), b_n - 0.02 * (b_n - a_n)
        inside_model = (count_n > 0) & (modelled > low) & (modelled < high)
        # regula falsi where g has said something, else (IBP) the geometric midpoint
        bracketed = ops.where(count_n > 0, falsi, geometric)
        bracketed = ops.where(inside_model, modelled, ops.clip(bracketed, low, high))
        bracketed = ops.where(a_n > 0, bracketed, ops.minimum(bracketed, 0.5 * b_n))
        # a bracket that did not halve (in log scale) since the last pass: bisect
        finite = (a_n > 0) & ~unbounded
        width_n = ops.where(
            finite, ops.log(ops.where(finite, b_n / ops.maximum(a_n, 1e-30), 2.0)), BIG
        )
        bracketed = ops.where(finite & (width_n > 0.5 * width), geometric, bracketed)
        grow = ops.where(count_n > 0, ops.maximum(modelled, eps * 1.05), eps * 4.0)
        eps_n = ops.where(unbounded, grow, bracketed)
        new = (eps_n, lo_n, a_n, fa_n, b_n, fb_n, top_n, e1_n, g1_n, e2_n, g2_n, count_n, width_n)
        old = (eps, lo, a, fa, b, fb, top, e1, g1, e2, g2, count, width)
        return (k + 1, *(ops.where(active, n, o) for n, o in zip(new, old)))

    out = ops.while_loop(cond, body, state)
    return out[2], out[0]
