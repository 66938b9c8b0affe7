"""One bound pass at a radius: the lower bounds of ``f_y - f_j`` over a ball (IBP or CROWN).

`probe` returns, for the specifications ``A`` ``(S, B, C)`` (row ``j`` of
input ``n``: ``e_y - e_j``), the terms ``c`` and ``d`` of::

    min_{||x - x0|| <= eps} <A, f(x)>  >=  c - eps' d     for every eps' <= eps

(the relaxations chosen for ``eps`` stay valid on smaller balls, and only the
input term scales with the radius), so one pass certifies every
``eps' < min(eps, c / d)``.

* Bounds of each nonlinear node's input, in order: inside the input's affine
  prefix exactly (``W x0 +- eps ||W_row||_*``, the row norms computed once per
  call); elsewhere by interval arithmetic (IBP, Gowal et al. 2018), intersected
  for CROWN with a backward pass from that tensor (identity rows ``+-e_k``,
  chunked over its neurons: ``chunks``). A ``point`` pass uses the values at
  ``x0`` (``eps = 0``): its relaxations are the tangents, the linearisation.
* The specification: IBP folds it through the linear layers after the last
  nonlinear ones (exact on a linear model) and bounds those by their
  intervals; CROWN propagates it back to the input through every relaxation.
"""

from __future__ import annotations

import math
from typing import Any

from keras import ops

from keras_lpc.robustness.certify._graph import BoundGraph
from keras_lpc.robustness.certify._propagate import (
    backward,
    input_terms,
    interval_forward,
    interval_stop,
    needs_interval,
    relaxed,
)


def _per_input(eps: Any, ndim: int) -> Any:
    return ops.reshape(eps, (-1, *([1] * ndim)))


def _crown_interval(graph, tensor, chunk, relaxations, x0, eps, norm) -> tuple[Any, Any]:
    """CROWN bounds ``(l, u)`` of every neuron of ``tensor``, ``chunk`` neurons per pass."""
    shape = graph.shapes[tensor]
    n = math.prod(shape)
    visit = relaxed(relaxations)

    def rows_bounds(rows: Any) -> tuple[Any, Any]:
        e = ops.cast(ops.expand_dims(rows, 1) == ops.expand_dims(ops.arange(n), 0), x0.dtype)
        a = ops.reshape(ops.concatenate([e, -e], axis=0), (-1, 1, *shape))
        a_in, const = backward(graph, tensor, a, visit)
        dot, dual = input_terms(a_in, x0, norm)
        low = dot - eps[None] * dual + (0.0 if const is None else const)
        low = ops.broadcast_to(low, (2 * chunk, ops.shape(x0)[0]))
        return ops.transpose(low[:chunk]), -ops.transpose(low[chunk:])

    if chunk >= n:
        lower, upper = rows_bounds(ops.arange(n))
    else:
        count = -(-n // chunk)
        start = ops.zeros((ops.shape(x0)[0], count * chunk), x0.dtype)

        def body(k: Any, carry: tuple[Any, Any]) -> tuple[Any, Any]:
            low, up = rows_bounds(k * chunk + ops.arange(chunk))
            return (
                ops.slice_update(carry[0], (0, k * chunk), low),
                ops.slice_update(carry[1], (0, k * chunk), up),
            )

        lower, upper = ops.fori_loop(0, count, body, (start, start))
        lower, upper = lower[:, :n], upper[:, :n]
    return ops.reshape(lower, (-1, *shape)), ops.reshape(upper, (-1, *shape))


def probe(
    graph: BoundGraph,
    method: str,
    norm: str,
    chunks: dict[int, int],
    x0: Any,
    values: list[Any],
    radii: dict[int, Any],
    eps: Any,
    spec: Any,
    point: bool = False,
) -> tuple[Any, Any]:
    """``(c, d)``, each ``(S, B)``, for the specifications ``spec`` at radii ``eps`` (B,).

    ``values``: every tensor at ``x0`` (`BoundGraph.forward`); ``radii``: the
    dual norms of the rows of the input's affine prefix, ``(1, *shape)`` per
    tensor of ``needs_interval``.
    """
    need = needs_interval(graph)
    bounds: dict[int, tuple[Any, Any]] = {}
    relaxations: dict[int, Any] = {}
    for out in sorted(need & graph.prefix):  # exact: W x0 +- eps ||W_row||_*
        r = radii[out] * _per_input(eps, len(graph.shapes[out]))
        bounds[out] = (values[out] - r, values[out] + r)
    for i, node in enumerate(graph.nodes):
        out = i + 1
        if node.op.kind == "linear":
            if out in need and out not in graph.prefix:
                bounds[out] = interval_forward(graph, out, bounds)
            continue
        z = node.inputs[0]
        if point:  # the linearisation at x0
            relaxations[out] = node.op.tangent(values[z])
            bounds[out] = (values[out], values[out])
            continue
        lower, upper = bounds[z]
        if method == "crown" and z not in graph.prefix:
            low, up = _crown_interval(graph, z, chunks[z], relaxations, x0, eps, norm)
            lower, upper = ops.maximum(lower, low), ops.minimum(upper, up)
        if method == "crown":
            relaxations[out] = node.op.relax(lower, upper)
        bounds[out] = node.op.interval(lower, upper)
    visit = relaxed(relaxations) if method == "crown" or point else interval_stop(bounds)
    a_in, const = backward(graph, graph.output, spec, visit)
    dot, dual = input_terms(a_in, x0, norm)
    c = dot + (0.0 if const is None else const)
    shape = (spec.shape[0], ops.shape(x0)[0])
    return ops.broadcast_to(c, shape), ops.broadcast_to(dual, shape)
