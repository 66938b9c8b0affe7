"""The decision-based attack's loops on the device: label queries, boundary search, walk, and
coordinate search, each written once in ``keras.ops``.

`walk_loop` (HopSkipJump steps) and `coordinate_loop` (moving one coordinate
at a time towards ``x``) are compiled once per model and setting by
`keras_lpc.robustness.Scorer.run` and run a whole batch on the device; their
probe directions come from `keras_lpc.robustness._counter` (the same on every
backend), so nothing crosses to the host inside them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc.robustness import _counter
from keras_lpc.robustness._norms import norm_of, per_row

SPLIT = 3  # points queried per round of the boundary search
ROUNDS = 7  # rounds: the bracket shrinks to 4**-7 = 6e-5 of the segment
HALVINGS = 12  # geometric step sizes tried per walk step
CHUNK = 20  # probe directions drawn and queried per pass of the estimate loop
FRACTIONS = 8  # coordinate search: positions tried per coordinate and round
NARROW = 3  # coordinate search: rounds per coordinate (the bracket shrinks 8-fold per round)


def labels_at(fn: Any, points: Any, clip: Any) -> Any:
    """Predicted labels (k, n) int32 at points (k, n, ...), clipped to ``clip`` (or None)."""
    k = points.shape[0]
    if clip is not None:
        points = ops.clip(points, clip[0], clip[1])
    pred = ops.argmax(fn(ops.reshape(points, (-1, *points.shape[2:]))), axis=1)
    return ops.reshape(ops.cast(pred, "int32"), (k, -1))


def blend(x: Any, target: Any, t: Any, norm: str) -> Any:
    """The points at parameters ``t`` in [0, 1] between ``x`` (t=0) and ``target`` (t=1):
    ``t`` (n,) gives (n, ...), ``t`` (k, n) gives (k, n, ...) (all ``k`` in one op per step).

    L2: on the segment. L-inf: ``x + clip(target - x, -e, e)`` with ``e = t ||target - x||_inf``.
    """
    d = target - x
    if norm == "l2":
        return x + per_row(t, x) * d
    e = per_row(t * norm_of(d, "linf"), x)
    return x + ops.minimum(ops.maximum(d, -e), e)  # clip, broadcast (TF's clip keeps d's shape)


def _row(values: Any, index: Any) -> Any:
    """``values[index[i], i, ...]`` for every ``i``: values (k, n, ...), index (n,) int."""
    index = ops.reshape(ops.cast(index, "int32"), (1, -1, *(1,) * (len(values.shape) - 2)))
    return ops.take_along_axis(values, index, axis=0)[0]


def search(fn: Any, x: Any, target: Any, labels: Any, norm: str, clip: Any) -> Any:
    """From adversarial ``target`` towards ``x``: an adversarial point near the boundary.

    ``ROUNDS`` rounds each query ``SPLIT`` evenly spaced points of the bracket
    at once and keep the sub-interval where the label changes, so the bracket
    shrinks ``(SPLIT + 1)``-fold per round.
    """
    lo = ops.zeros_like(labels, dtype=x.dtype)
    hi = ops.ones_like(lo)
    frac = ops.cast(ops.arange(1, SPLIT + 1), x.dtype) / (SPLIT + 1)

    def round_(_: Any, bracket: tuple[Any, Any]) -> tuple[Any, Any]:
        lo, hi = bracket  # a loop, not unrolled: the model is traced once
        ts = lo[None] + frac[:, None] * (hi - lo)[None]  # (S, n)
        adv = labels_at(fn, blend(x, target, ts, norm), clip) != labels[None]  # (S, n)
        first = ops.where(ops.any(adv, axis=0), ops.argmax(ops.cast(adv, "int32"), axis=0), SPLIT)
        # ts at the first adversarial point and at the one before it (where they exist)
        at_first = _row(ts, ops.minimum(first, SPLIT - 1))
        before = _row(ts, ops.maximum(first - 1, 0))
        return ops.where(first > 0, before, lo), ops.where(first < SPLIT, at_first, hi)

    _, hi = backend.fori_loop(0, ROUNDS, round_, (lo, hi))
    return blend(x, target, hi, norm)


def directions(seed: Any, keys: Any, step: Any, first: Any, count: int, like: Any) -> Any:
    """Unit-L2 directions (count, n, ...) shaped like ``like`` (n, ...): probes ``first`` to
    ``first + count - 1`` of walk step ``step`` for the rows ``keys`` (n,) int32, Gaussian
    directions normalised, a pure function of ``(seed, key, step, probe, coordinate)``."""
    probe = ops.cast(first, "int32") + ops.arange(count, dtype="int32")[:, None]
    base = _counter.key(seed, ops.expand_dims(keys, 0), step, probe)  # (count, n)
    size = int(np.prod(like.shape[1:]))
    u = _counter.normal(base, size, like.dtype)  # (count, n, size)
    u = u / ops.maximum(ops.sqrt(ops.sum(u * u, axis=-1, keepdims=True)), 1e-30)
    return ops.reshape(u, (count, -1, *like.shape[1:]))


def normal_sum(
    fn: Any, best: Any, labels: Any, keys: Any, radius: Any, count: Any, seed: Any, step: Any,
    clip: Any,
) -> Any:  # fmt: skip
    """The normal estimate ``v = mean_i (phi_i - mean phi) u_i`` per row.

    Probes ``best + radius u_i`` (``radius`` (n,), ``u_i`` `directions`), ``phi_i
    = +1`` where the label is not ``labels`` and ``-1`` where it is; ``CHUNK``
    probes per pass, the ones past ``count`` weighted 0; the mean is not
    subtracted where all ``phi_i`` agree (as in HopSkipJump).
    """
    total = ops.cast(count, best.dtype)
    tail = (1,) * (len(best.shape) - 1)

    def body(i: Any, carry: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
        s1, s0, p = carry
        u = directions(seed, keys, step, i * CHUNK, CHUNK, best)  # (k, n, ...)
        probes = best[None] + ops.reshape(radius, (1, -1, *tail)) * u
        pred = labels_at(fn, probes, clip)
        k = ops.cast(i * CHUNK + ops.arange(CHUNK), best.dtype)
        weight = ops.cast(k < total, best.dtype)[:, None]  # (k, 1)
        phi = ops.where(pred != labels[None], 1.0, -1.0) * weight  # (k, n)
        wu = u * ops.reshape(weight, (CHUNK, 1, *tail))
        s1 = s1 + ops.sum(ops.reshape(phi, (CHUNK, -1, *tail)) * u, axis=0)
        return s1, s0 + ops.sum(wu, axis=0), p + ops.sum(phi, axis=0)

    zeros = ops.zeros_like(best)
    passes = (ops.cast(count, "int32") + CHUNK - 1) // CHUNK
    s1, s0, p = backend.fori_loop(0, passes, body, (zeros, zeros, ops.zeros_like(radius)))
    mean = p / total
    centre = ops.where(ops.abs(mean) == 1.0, 0.0, mean)
    return (s1 - per_row(centre, s0) * s0) / total


def walk_loop(norm: str, dim: int, clipped: bool) -> Any:
    """The walk, one compiled loop per batch: ``(x, best, labels, keys, iterations, probes,
    seed, lo, hi) -> (best,)`` (see `keras_lpc.robustness.decision.walk`)."""

    def make(fn: Any) -> Any:
        def loop(x, best, labels, keys, iterations, probes, seed, lo, hi):  # noqa: ANN001
            clip = (lo, hi) if clipped else None
            labels = ops.cast(labels, "int32")
            keys = ops.cast(keys, "int32")
            tail = (1,) * (len(x.shape) - 1)
            halves = ops.reshape(0.5 ** ops.cast(ops.arange(HALVINGS), x.dtype), (-1, 1, *tail))

            def body(t: Any, best: Any) -> Any:
                tf_ = ops.cast(t, x.dtype)
                d = norm_of(best - x, norm)
                d2 = ops.maximum(norm_of(best - x, "l2"), 1e-12)
                count = ops.minimum(ops.cast(probes, x.dtype), ops.ceil(20.0 * ops.sqrt(tf_)))
                v = normal_sum(fn, best, labels, keys, d2 / dim**0.5, count, seed, t, clip)
                # the rest of the step is one graph on torch (its loops are short)
                return backend.bind(advance)(tf_, best, v, d, d2)

            def advance(tf_: Any, best: Any, v: Any, d: Any, d2: Any) -> Any:
                if norm == "linf":
                    v, xi = ops.sign(v), d / ops.sqrt(tf_)
                else:
                    vn = per_row(norm_of(v, "l2"), v)
                    v = ops.where(vn > 0, v / ops.maximum(vn, 1e-30), 0.0)
                    xi = d2 / ops.sqrt(tf_)
                # geometric step b + xi v, xi halved until adversarial (all sizes at once)
                steps = best[None] + halves * per_row(xi, x)[None] * v[None]  # (H, n, ...)
                adv = labels_at(fn, steps, clip) != labels[None]  # (H, n)
                found = ops.any(adv, axis=0)
                target = _row(steps, ops.argmax(ops.cast(adv, "int32"), axis=0))
                b = search(fn, x, target, labels, norm, clip)
                better = found & (norm_of(b - x, norm) < d)
                return ops.where(per_row(better, x), b, best)

            return (backend.fori_loop(1, ops.cast(iterations, "int32") + 1, body, best),)

        return loop

    return make


def coordinate_loop(norm: str, width: int, clipped: bool) -> Any:
    """The coordinate search, one compiled loop per batch: ``(x, best, labels, sweeps, lo,
    hi) -> (best,)`` (see `keras_lpc.robustness.decision.coordinate_search`); ``width``
    coordinates per sweep."""

    def make(fn: Any) -> Any:
        def loop(x, best, labels, sweeps, lo, hi):  # noqa: ANN001
            clip = (lo, hi) if clipped else None
            labels = ops.cast(labels, "int32")
            shape = tuple(x.shape[1:])
            size = int(np.prod(shape))
            xf = ops.reshape(x, (-1, size))
            frac = ops.cast(ops.arange(FRACTIONS), x.dtype) / FRACTIONS  # (K,)

            def closest(af: Any, hot: Any, xi: Any, lo: Any, hi: Any) -> tuple[Any, Any, Any]:
                # the probes x_i + t (a_i - x_i), t = lo + (k / K)(hi - lo): the first
                # adversarial one (the closest to x), its t and the t before it
                ai = ops.sum(af * hot, axis=1)
                ts = lo[None] + frac[:, None] * (hi - lo)[None]  # (K, n)
                pts = af[None] + hot[None] * (xi[None] + ts * (ai - xi)[None] - ai[None])[..., None]
                adv = labels_at(fn, ops.reshape(pts, (FRACTIONS, -1, *shape)), clip)
                adv = adv != labels[None]
                first = ops.argmax(ops.cast(adv, "int32"), axis=0)
                found = ops.any(adv, axis=0)
                t = ops.where(found, _row(ts, first), hi)
                before = ops.where(found & (first == 0), t, t - (hi - lo) / FRACTIONS)
                return t, before, found

            def sweep(_: Any, af: Any) -> Any:
                # the coordinates farthest from x first: the largest savings
                order = ops.argsort(-ops.abs(af - xf), axis=1)[:, :width]
                one = ops.ones((ops.shape(af)[0],), dtype=x.dtype)

                def move(p: Any, af: Any) -> Any:
                    hot = ops.one_hot(ops.take(order, p, axis=1), size, dtype=x.dtype)  # (n, D)
                    xi = ops.sum(xf * hot, axis=1)
                    ai = ops.sum(af * hot, axis=1)

                    # a_i -> x_i + t (a_i - x_i): the closest adversarial t on a grid of K in
                    # [0, 1), then on grids of K between it and the grid point before it
                    def narrow(_: Any, bracket: tuple[Any, Any]) -> tuple[Any, Any]:
                        lo, hi = bracket
                        t, below, _ = closest(af, hot, xi, lo, hi)
                        return below, t

                    _, t = backend.fori_loop(0, NARROW, narrow, (0.0 * one, one))
                    return af + hot * (xi + t * (ai - xi) - ai)[:, None]

                return backend.fori_loop(0, width, move, af)

            af = backend.fori_loop(
                0, ops.cast(sweeps, "int32"), sweep, ops.reshape(best, (-1, size))
            )
            moved = ops.reshape(af, (-1, *shape))
            return (search(fn, x, moved, labels, norm, clip),)

        return loop

    return make
