"""The search for the largest certified radius, one compiled ``keras.ops`` loop per batch.

A pass at radius ``eps`` (`keras_lpc.robustness.certify._crown.probe`) gives
per input ``g(eps) = min_j c_j / d_j`` (0 where some ``c_j <= 0``): every
``eps' < min(eps, g(eps))`` is certified (``c_j - eps' d_j > 0``). So each
pass certifies ``min(eps, g(eps))`` whatever its outcome. ``g`` falls as
``eps`` grows (the relaxations loosen), and the method's radius is the root
of ``phi(eps) = g(eps) - eps``. The search keeps a bracket ``[a, b]`` with
``phi(a) >= 0 > phi(b)``, starting from ``a = 0``, ``phi(0) = g(0)`` (the
linearisation's radius, `crossing` of a point pass) and a first pass at
``g(0)``:

* while no pass has failed, the next radius is ``g(eps)`` (a fixed-point step;
  ``4 eps`` where ``g`` says nothing, as for IBP without a linear path from the
  input, where ``g`` is infinite or 0);
* then regula falsi with the Illinois modification (Dowell & Jarratt 1971) on
  ``phi``, kept 2 % inside the bracket; where ``phi(a)`` is infinite (IBP),
  the geometric midpoint.

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
    """``g``: ``min_{j != y} c_j / d_j`` per input, ``(B,)``; ``BIG`` where no ``d_j > 0``
    limits it, 0 where some ``c_j <= 0``. ``c``, ``d``: ``(C, B)`` (row j: ``f_y - f_j``)."""
    own = ops.transpose(ops.one_hot(labels, classes, dtype="bool"))
    ratio = c / ops.maximum(d, 1e-30)
    ratio = ops.where(d > 0, ratio, ops.where(c > 0, BIG, 0.0))
    ratio = ops.where(c > 0, ops.minimum(ratio, BIG), 0.0)
    ratio = ops.where(own, BIG, ratio)
    return ops.min(ratio, axis=0)


def search(
    probe: Callable[[Any], Any], first: Any, rtol: float, steps: int
) -> tuple[Any, Any]:
    """``(certified radius (B,), passes)``: the loop of the module docstring.

    ``probe(eps) -> g(eps)`` (B,); ``first`` (B,): ``g(0)`` (0 or less: nothing
    to certify, e.g. a misclassified input).
    """
    live = first > 0
    zeros = ops.zeros_like(first)
    start = ops.where(live, ops.minimum(first, BIG), 1.0)
    state = (
        ops.convert_to_tensor(0, "int32"),
        start,  # eps: the next radius
        zeros,  # lo: certified so far
        zeros,  # a
        ops.where(live, start, 0.0),  # phi(a)
        ops.where(live, BIG, 0.0),  # b
        zeros,  # phi(b)
        ops.where(live, BIG, 0.0),  # top: smallest g(a) seen (bounds the root)
        zeros,  # last: +1 if the last pass moved b, -1 if it moved a
    )

    def open_(lo: Any, b: Any, top: Any) -> Any:
        return ops.minimum(b, top) > lo * (1.0 + rtol)

    def cond(k, eps, lo, a, fa, b, fb, top, last):
        return ops.logical_and(k < steps, ops.any(open_(lo, b, top)))

    def body(k, eps, lo, a, fa, b, fb, top, last):
        active = open_(lo, b, top)
        g = probe(eps)
        phi = g - eps
        ok = phi >= 0
        lo_n = ops.maximum(lo, ops.minimum(eps, g))
        top_n = ops.where(ok, ops.minimum(top, g), top)
        # Illinois: an end kept twice in a row has its phi halved
        fa_n = ops.where(ok, phi, ops.where(last > 0, fa * 0.5, fa))
        fb_n = ops.where(ok, ops.where(last < 0, fb * 0.5, fb), phi)
        a_n, b_n = ops.where(ok, eps, a), ops.where(ok, b, eps)
        last_n = ops.where(ok, -1.0, 1.0)
        unbounded = b_n >= BIG
        informative = (g > 0) & (g < BIG)
        grow = ops.where(ok & informative, g, eps * 4.0)
        falsi = a_n + (b_n - a_n) * fa_n / ops.maximum(fa_n - fb_n, 1e-30)
        geometric = ops.where(a_n > 0, ops.sqrt(ops.maximum(a_n, 1e-30) * b_n), b_n * 0.25)
        inside = ops.where(fa_n < BIG * 1e-6, falsi, geometric)  # g(a) infinite: IBP
        inside = ops.clip(inside, a_n + 0.02 * (b_n - a_n), b_n - 0.02 * (b_n - a_n))
        eps_n = ops.where(unbounded, grow, inside)
        keep = lambda new, old: ops.where(active, new, old)  # noqa: E731
        return (
            k + 1,
            keep(eps_n, eps),
            keep(lo_n, lo),
            keep(a_n, a),
            keep(fa_n, fa),
            keep(b_n, b),
            keep(fb_n, fb),
            keep(top_n, top),
            keep(last_n, last),
        )

    out = ops.while_loop(cond, body, state)
    return out[2], out[0]
