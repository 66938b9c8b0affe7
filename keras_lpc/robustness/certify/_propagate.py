"""Passes over a `BoundGraph`: backward linear bounds, interval arithmetic, linear parts.

`backward` is the engine of CROWN (Zhang et al. 2018) and of the folded
specification of IBP: starting from coefficients ``A`` ``(M, Bx, *shape)`` on a
tensor (``M`` bounds, ``Bx`` 1 when they are the same for every input, else
the batch), it walks the graph in reverse order, transposes every linear
operation (``A <- W^T A``, collecting ``<A, b>``) and hands each nonlinear
node to ``visit``, which replaces it by its relaxation (CROWN), by the
interval of its output (IBP), or stops there (operator norms). What reaches
the input is ``A_in``; over the ball ``||x - x0|| <= eps``::

    min <A_in, x> + const = <A_in, x0> + const - eps * ||A_in||_*

with ``||.||_*`` the dual norm (L2 for L2, L1 for L-inf) (`input_terms`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras import ops

from keras_lpc.robustness.certify._graph import BoundGraph

Visit = Callable[[int, Any, Any], tuple[Any, Any]]


def _features(a: Any, first: int = 2) -> tuple[int, ...]:
    return tuple(range(first, len(a.shape)))


def backward(graph: BoundGraph, start: int, a: Any, visit: Visit) -> tuple[Any, Any]:
    """``(A_in or None, const or None)`` for coefficients ``a`` on tensor ``start``.

    ``visit(tensor id, node, A)`` handles a nonlinear node's output coefficients
    ``A``: it returns ``(coefficients of the node's input or None, constant or
    None)``; ``None`` stops the walk there.
    """
    m = a.shape[0]
    pending = {start: a}
    const = None

    def add_const(c: Any) -> None:
        nonlocal const
        if c is not None:
            const = c if const is None else const + c

    for i in range(start - 1, -1, -1):
        a = pending.pop(i + 1, None)
        if a is None:
            continue
        node = graph.nodes[i]
        if node.op.kind == "linear":
            flat = ops.reshape(a, (-1, *graph.shapes[i + 1]))
            bias = node.op.bias_dot(flat)
            if bias is not None:
                add_const(ops.reshape(bias, (m, -1)))
            parts = node.op.transpose(flat)
            coefficients = [
                ops.reshape(p, (m, -1, *graph.shapes[j])) for p, j in zip(parts, node.inputs)
            ]
        else:
            down, c = visit(i + 1, node, a)
            add_const(c)
            coefficients = [] if down is None else [down]
        for j, coefficient in zip(node.inputs, coefficients):
            pending[j] = coefficient if j not in pending else pending[j] + coefficient
    return pending.get(0), const


def input_terms(a_in: Any, x0: Any, norm: str) -> tuple[Any, Any]:
    """``(<A_in, x0>, ||A_in||_*)``, each ``(M, B)`` (zeros when ``A_in`` is None)."""
    if a_in is None:
        return 0.0, 0.0
    dot = ops.sum(a_in * x0[None], axis=_features(a_in))
    if norm == "l2":
        dual = ops.sqrt(ops.sum(a_in * a_in, axis=_features(a_in)))
    else:
        dual = ops.sum(ops.abs(a_in), axis=_features(a_in))
    return dot, dual


def relaxed(relaxations: dict[int, Any]) -> Visit:
    """CROWN's visit: each nonlinear node replaced by its relaxation."""

    def visit(tensor: int, node: Any, a: Any) -> tuple[Any, Any]:
        return node.op.back(relaxations[tensor], a)

    return visit


def interval_stop(bounds: dict[int, tuple[Any, Any]]) -> Visit:
    """IBP's visit: a nonlinear node's output ``y`` in ``[l, u]`` gives
    ``<A, y> >= <A+, l> + <A-, u>``, and the walk stops."""

    def visit(tensor: int, node: Any, a: Any) -> tuple[Any, Any]:
        lower, upper = bounds[tensor]
        c = ops.maximum(a, 0.0) * lower[None] + ops.minimum(a, 0.0) * upper[None]
        return None, ops.sum(c, axis=_features(c))

    return visit


def interval_forward(
    graph: BoundGraph, tensor: int, bounds: dict[int, tuple[Any, Any]]
) -> tuple[Any, Any]:
    """The interval of linear ``tensor`` from its inputs' intervals (``c +- r`` arithmetic)."""
    node = graph.nodes[tensor - 1]
    centers = [0.5 * (bounds[j][0] + bounds[j][1]) for j in node.inputs]
    radii = [0.5 * (bounds[j][1] - bounds[j][0]) for j in node.inputs]
    center, radius = node.op.forward(*centers), node.op.absolute(*radii)
    return center - radius, center + radius


def linear_forward(graph: BoundGraph, sources: dict[int, Any], target: int) -> dict[int, Any]:
    """The linear parts (no biases) from ``sources`` (id -> (n, *shape)) up to ``target``:
    every tensor reached (nonlinear nodes not in ``sources`` count as zero)."""
    values: dict[int, Any] = dict(sources)
    n = next(iter(sources.values())).shape[0]
    for i in range(target):
        if i + 1 in sources:
            continue
        node = graph.nodes[i]
        ins = [values.get(j) for j in node.inputs]
        if node.op.kind != "linear" or all(v is None for v in ins):
            continue
        ins = [
            ops.zeros((n, *graph.shapes[j])) if v is None else v for v, j in zip(ins, node.inputs)
        ]
        values[i + 1] = node.op.linear(*ins)
    return values


def needs_interval(graph: BoundGraph) -> set[int]:
    """Tensors whose interval a bound pass uses: inputs of nonlinear nodes and of linear
    nodes outside the input's affine prefix (`BoundGraph.prefix`)."""
    need = set()
    for i, node in enumerate(graph.nodes):
        if node.op.kind != "linear" or i + 1 not in graph.prefix:
            need.update(node.inputs)
    return need
