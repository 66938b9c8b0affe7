"""A greedy, gradient-free search on the class scores for piecewise-constant models.

Where a model's input gradient is exactly zero (an input quantiser such as
``round(4 x) / 4``, a lookup, a hard threshold), its class scores are
piecewise constant: no gradient attack moves, and the decision regions are
unions of boxes whose faces a normal estimate cannot follow. The search moves
one coordinate at a time from ``x`` and reads the scores, not their gradient.
Per step, for every coordinate ``i`` (at most `WIDTH`, drawn at random where
``D`` is larger), both signs and ``K`` sizes ``s_k = (k / K) span / 2``
(``span`` the width of ``clip``, else ``2 ||x||_inf``), the candidate
``a + s_k e_i`` (clipped) is scored, and the move with the largest
decrease of the margin ``L = z_y - max_{j != y} z_j`` per unit of added cost
is taken::

    gain = (L(a) - L(a')) / cost,  cost = (a'_i - x_i)^2 - (a_i - x_i)^2          (L2)
                                   cost = max(|a'_i - x_i| - e, 0) + 1e-3 |a'_i - x_i|  (L-inf,
                                                                    e = ||a - x||_inf)

until ``L < 0`` (adversarial). Each candidate crossing a quantisation
threshold is found on the grid of sizes, so the step overshoots the threshold
by less than ``span / (2 K)``; `keras_lpc.robustness.decision.coordinate_search`
then moves every coordinate back towards ``x`` as far as the label allows.
One compiled loop per batch (`keras_lpc.robustness.Scorer.run`): each step
scores ``2 K min(D, WIDTH)`` candidates per input, `CHUNK` coordinates per model call.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lpc import backend
from keras_lpc.robustness import _counter
from keras_lpc.robustness._losses import loss_of

SIZES = 32  # K: candidate sizes per coordinate and sign
WIDTH = 256  # coordinates scored per step, at most
CHUNK = 16  # coordinates per model call


def greedy_loop(norm: str, size: int, clipped: bool) -> Any:
    """The search on backend tensors: ``(x, labels, keys, span, steps, seed, lo, hi) ->
    (point, done)``, ``point`` adversarial where ``done``; ``size`` = D."""
    width = min(size, WIDTH)
    chunks = -(-width // CHUNK)

    def make(fn: Any) -> Any:
        def loop(x, labels, keys, span, steps, seed, lo, hi):  # noqa: ANN001
            labels = ops.cast(labels, "int32")
            shape = tuple(x.shape[1:])
            xf = ops.reshape(x, (-1, size))
            dtype = keras.backend.standardize_dtype(x.dtype)  # a torch dtype on torch
            signs = ops.convert_to_tensor(np.repeat([1.0, -1.0], SIZES).astype(dtype))
            grid = ops.convert_to_tensor(np.tile(np.arange(1, SIZES + 1) / SIZES, 2).astype(dtype))
            moves = signs * grid * 0.5  # (2K,) times span
            per = 2 * SIZES

            def margin(points: Any) -> Any:  # points (n, M, D) -> (n, M)
                m = ops.shape(points)[1]
                flat = ops.reshape(points, (-1, *shape))
                scores = fn(ops.clip(flat, lo, hi) if clipped else flat)
                return ops.reshape(loss_of(scores, ops.repeat(labels, m), "margin"), (-1, m))

            def body(t: Any, state: tuple[Any, Any]) -> tuple[Any, Any]:
                af, m = state
                if size > width:  # a random subset of the coordinates, new at every step
                    draw = _counter.key(seed, ops.expand_dims(keys, 1), t, ops.arange(size)[None])
                    order = ops.argsort(draw, axis=1)[:, :width]
                else:
                    order = ops.broadcast_to(ops.arange(size)[None], ops.shape(af))
                r = af - xf
                e = ops.max(ops.abs(r), axis=1, keepdims=True)

                def chunk(j: Any, best: tuple[Any, Any, Any, Any]) -> tuple[Any, Any, Any, Any]:
                    gain, where, value, new_m = best
                    cols = ops.minimum(j * CHUNK + ops.arange(CHUNK), width - 1)
                    idx = ops.take(order, cols, axis=1)  # (n, C)
                    hot = ops.one_hot(idx, size, dtype=x.dtype)  # (n, C, D)
                    ai = ops.take_along_axis(af, idx, axis=1)  # (n, C)
                    xi = ops.take_along_axis(xf, idx, axis=1)
                    new = ai[..., None] + span[:, None, None] * moves  # (n, C, 2K)
                    if clipped:
                        new = ops.clip(new, lo, hi)
                    delta = ops.reshape(new - ai[..., None], (-1, CHUNK * per, 1))
                    pts = af[:, None] + ops.repeat(hot, per, axis=1) * delta  # (n, C 2K, D)
                    mc = ops.reshape(margin(pts), (-1, CHUNK, per))
                    ri = ops.abs(new - xi[..., None])
                    if norm == "l2":
                        cost = ri * ri - ((ai - xi) ** 2)[..., None]
                    else:
                        cost = ops.maximum(ri - e[..., None], 0.0) + 1e-3 * ri
                    down = m[:, None, None] - mc
                    ok = (cost > 0) & (down > 0) & (ops.abs(new - ai[..., None]) > 0)
                    g = ops.reshape(
                        ops.where(ok, down / ops.where(ok, cost, 1.0), -1.0), (-1, CHUNK * per)
                    )
                    k = ops.argmax(g, axis=1)
                    top = ops.take_along_axis(g, k[:, None], axis=1)[:, 0]
                    better = top > gain
                    return (
                        ops.where(better, top, gain),
                        ops.where(
                            better,
                            ops.take_along_axis(idx, (k // per)[:, None], axis=1)[:, 0],
                            where,
                        ),
                        ops.where(
                            better,
                            ops.take_along_axis(
                                ops.reshape(new, (-1, CHUNK * per)), k[:, None], axis=1
                            )[:, 0],
                            value,
                        ),
                        ops.where(
                            better,
                            ops.take_along_axis(
                                ops.reshape(mc, (-1, CHUNK * per)), k[:, None], axis=1
                            )[:, 0],
                            new_m,
                        ),
                    )

                n = ops.shape(af)[0]
                start = (
                    ops.full((n,), -1.0, dtype=x.dtype),
                    ops.zeros((n,), dtype="int32"),
                    ops.zeros((n,), dtype=x.dtype),
                    m,
                )
                gain, where, value, new_m = backend.fori_loop(0, chunks, chunk, start)
                take = (gain > 0) & (m >= 0)  # a move that lowers the margin, not yet adversarial
                hot = ops.one_hot(where, size, dtype=x.dtype)
                moved = af + hot * (value - ops.sum(af * hot, axis=1))[:, None]
                return ops.where(take[:, None], moved, af), ops.where(take, new_m, m)

            def more(t: Any, af: Any, m: Any) -> Any:  # stop once every input is adversarial
                return (t < ops.cast(steps, "int32")) & ops.any(m >= 0)

            def step(t: Any, af: Any, m: Any) -> tuple[Any, Any, Any]:
                return (t + 1, *body(t, (af, m)))

            m0 = margin(ops.expand_dims(xf, 1))[:, 0]
            start = (ops.convert_to_tensor(0, "int32"), xf, m0)
            _, af, m = backend.while_loop(more, step, start)
            return ops.reshape(af, (-1, *shape)), m < 0

        return loop

    return make
