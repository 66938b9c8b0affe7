"""Norms of the linear maps inside a model: row norms of the input's affine prefix, operator
norms by power iteration, and the per-class-pair Lipschitz constants of the head.

`row_norms`: ``||W_k||_*`` of each row of the linear map from the input to a
tensor (nonlinear nodes zeroed), by pushing the input's basis through it, in
chunks; ``||.||_*`` is the dual norm (L2, or L1 for an L-inf ball).

`pair_constants` (the Lipschitz margin bound, Tsuzuku, Sato & Sugiyama 2018):
each nonlinear node's input ``z`` is a linear map of earlier nonlinear
outputs ``v_s`` and of the input, ``z = sum_s T_s v_s + T_0 x + b``, so its
Lipschitz constant (input in ``norm`` -> L2) is at most::

    L_z = sum_s ||T_s||_2 L_s + ||T_0||_{norm -> 2},     L_v = lip(activation) L_z

with ``||T||_2`` from power iteration on ``T^T T`` (convolutions as operators,
their transposes by ``conv_transpose``), ``||T_0||_{inf -> 2} <= min(sqrt(d)
||T_0||_2, ||(||row_k||_1)_k||_2)``. The last linear layers fold into the
class pair: with ``f_y - f_j = sum_s <Lambda_s, v_s> + <Lambda_0, x> + c``::

    K[y, j] = sum_s L_s ||Lambda_s(y) - Lambda_s(j)||_2 + ||Lambda_0(y) - Lambda_0(j)||_*

and ``rho = min_j (f_y - f_j) / K[y, j]`` (exact for a linear model).
Power iteration approaches ``||T||_2`` from below; it runs until its
estimate changes by less than ``1e-7`` (relative), at most 1000 steps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from keras import ops

from keras_lpc.robustness.certify._graph import BoundGraph
from keras_lpc.robustness.certify._propagate import backward, linear_forward

POWER_STEPS = 1000
POWER_TOL = 1e-7


def row_norms(graph: BoundGraph, targets: list[int], norm: str, chunk: int = 256) -> dict[int, Any]:
    """``(1, *shape)`` float32 arrays of the rows' dual norms of input -> target maps."""
    shape = graph.shapes[0]
    d = math.prod(shape)
    sums = {t: np.zeros(graph.shapes[t], "float64") for t in targets}
    top = max(targets, default=0)
    for start in range(0, d, chunk):
        rows = np.arange(start, min(start + chunk, d))
        basis = np.zeros((len(rows), d), "float32")
        basis[np.arange(len(rows)), rows] = 1.0
        values = linear_forward(graph, {0: ops.convert_to_tensor(basis.reshape(-1, *shape))}, top)
        for t in targets:
            if t in values:
                v = np.asarray(ops.convert_to_numpy(values[t]), "float64")
                sums[t] += np.sum(v * v if norm == "l2" else np.abs(v), axis=0)
    out = {t: np.sqrt(s) if norm == "l2" else s for t, s in sums.items()}
    return {t: v[None].astype("float32") for t, v in out.items()}


def sources(graph: BoundGraph, tensor: int) -> list[int]:
    """The nonlinear outputs (and 0, the input) ``tensor`` is a linear map of."""
    found, stack, seen = set(), [tensor], set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        if t == 0 or graph.nodes[t - 1].op.kind != "linear":
            found.add(t)
        else:
            stack.extend(graph.nodes[t - 1].inputs)
    return sorted(found)


def _collect(store: dict[int, Any]):
    def visit(tensor: int, node: Any, a: Any) -> tuple[Any, Any]:
        store[tensor] = a
        return None, None

    return visit


def operator_norm(graph: BoundGraph, source: int, target: int, seed: int = 0) -> float:
    """``||T||_2`` of the linear map from tensor ``source`` to ``target`` (power iteration)."""
    v = np.random.default_rng(seed).normal(size=(1, *graph.shapes[source])).astype("float32")
    v = ops.convert_to_tensor(v / np.linalg.norm(v))
    sigma = 0.0
    for _ in range(POWER_STEPS):
        w = linear_forward(graph, {source: v}, target).get(target)
        if w is None:
            return 0.0
        store: dict[int, Any] = {}
        a_in, _ = backward(graph, target, w[None], _collect(store))
        back = a_in if source == 0 else store[source]
        back = ops.convert_to_numpy(back[0]).astype("float64")
        size = float(np.linalg.norm(back))
        estimate = math.sqrt(size)  # ||T^T T v|| -> sigma^2 for unit v
        if size == 0.0:
            return 0.0
        v = ops.convert_to_tensor((back / size).astype("float32"))
        done = abs(estimate - sigma) <= POWER_TOL * estimate
        sigma = estimate
        if done:
            break
    return sigma


def pair_constants(graph: BoundGraph, norm: str) -> np.ndarray:
    """``K`` (C, C) of the module docstring (float64; the diagonal is 0)."""
    d = math.prod(graph.shapes[0])
    lip: dict[int, float] = {}
    l1_rows: dict[int, Any] = {}
    if norm == "linf":
        inputs = [graph.nodes[t - 1].inputs[0] for t in graph.nonlinear()]
        l1_rows = row_norms(graph, inputs, "linf")
    for t in graph.nonlinear():
        z = graph.nodes[t - 1].inputs[0]
        total = 0.0
        for s in sources(graph, z):
            sigma = operator_norm(graph, s, z)
            if s == 0:
                if norm == "linf":
                    sigma = min(math.sqrt(d) * sigma, float(np.linalg.norm(l1_rows[z])))
                total += sigma
            else:
                total += sigma * lip[s]
        lip[t] = graph.nodes[t - 1].op.lipschitz * total
    classes = graph.classes
    store: dict[int, Any] = {}
    eye = ops.convert_to_tensor(np.eye(classes, dtype="float32")[:, None])
    a_in, _ = backward(graph, graph.output, eye, _collect(store))
    k = np.zeros((classes, classes))
    for s, a in store.items():
        rows = ops.convert_to_numpy(a).reshape(classes, -1).astype("float64")
        gram = rows @ rows.T
        sq = np.diag(gram)[:, None] + np.diag(gram)[None, :] - 2 * gram
        k += lip[s] * np.sqrt(np.maximum(sq, 0.0))
    if a_in is not None:
        rows = ops.convert_to_numpy(a_in).reshape(classes, -1).astype("float64")
        for y in range(classes):
            diff = rows[y][None] - rows
            k[y] += np.linalg.norm(diff, ord=2 if norm == "l2" else 1, axis=1)
    return k
