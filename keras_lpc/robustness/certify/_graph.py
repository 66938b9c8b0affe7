"""A model as a graph of bound operations: tensors numbered from the input (0) on.

Node ``i`` of `BoundGraph.nodes` computes tensor ``i + 1`` from earlier
tensors, so the list is in topological order: a forward pass runs it in
order, a backward pass (`keras_lpc.robustness.certify._propagate`) in reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from keras import ops

from keras_lpc.robustness.certify._ops import Affine, Conv, Dense


@dataclass
class Node:
    """``output = op(*inputs)`` (tensor ids)."""

    op: Any
    inputs: tuple[int, ...]


@dataclass
class BoundGraph:
    """The operations (`Node`) of a model, its tensors' shapes (without the batch axis)."""

    nodes: list[Node]
    shapes: list[tuple[int, ...]]
    name: str = "model"
    prefix: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        # tensors that are affine functions of the input alone (no nonlinearity before them)
        self.prefix = {0}
        for i, node in enumerate(self.nodes):
            if node.op.kind == "linear" and all(j in self.prefix for j in node.inputs):
                self.prefix.add(i + 1)

    @property
    def output(self) -> int:
        return len(self.nodes)

    @property
    def classes(self) -> int:
        return int(np.prod(self.shapes[-1]))

    def nonlinear(self) -> list[int]:
        """Ids of the tensors computed by nonlinear operations, in order."""
        return [i + 1 for i, n in enumerate(self.nodes) if n.op.kind != "linear"]

    def forward(self, x: Any) -> list[Any]:
        """Every tensor's value for inputs ``x`` (N, *input shape)."""
        values = [x]
        for node in self.nodes:
            values.append(node.op.forward(*(values[j] for j in node.inputs)))
        return values


class Builder:
    """Collects operations, inferring each one's output shape with a batch of one zero."""

    def __init__(self, input_shape: Sequence[int], dtype: str = "float32") -> None:
        self.nodes: list[Node] = []
        self.shapes: list[tuple[int, ...]] = [tuple(input_shape)]
        self.dtype = dtype

    def add(self, op: Any, inputs: Sequence[int]) -> int:
        zeros = [ops.zeros((1, *self.shapes[j]), self.dtype) for j in inputs]
        self.shapes.append(tuple(int(d) for d in op.forward(*zeros).shape[1:]))
        self.nodes.append(Node(op, tuple(inputs)))
        return len(self.nodes)

    def graph(self, output: int, name: str) -> BoundGraph:
        """The graph up to ``output``, BatchNorm-like affine maps folded into the
        Dense / Conv before them, operations that do not lead to the output dropped."""
        nodes = [Node(n.op, n.inputs) for n in self.nodes]
        needed = {output}
        for i in range(output - 1, -1, -1):
            if i + 1 in needed:
                needed.update(nodes[i].inputs)
        users: dict[int, int] = {}
        for i, node in enumerate(nodes):
            if i + 1 in needed:
                for j in node.inputs:
                    users[j] = users.get(j, 0) + 1
        alias: dict[int, int] = {}
        for i, node in enumerate(nodes):
            (src,) = node.inputs if len(node.inputs) == 1 else (None,)
            if (
                i + 1 in needed
                and isinstance(node.op, Affine)
                and src is not None
                and src > 0
                and users.get(src) == 1
                and isinstance(nodes[src - 1].op, (Dense, Conv))
                and _last_axis(node.op, self.shapes[src])
            ):
                nodes[src - 1] = Node(_fold(nodes[src - 1].op, node.op), nodes[src - 1].inputs)
                alias[i + 1] = src
        keep = [i for i in range(output) if i + 1 in needed and i + 1 not in alias]
        new_id = {0: 0}
        out_nodes, shapes = [], [self.shapes[0]]
        for i in keep:
            node = nodes[i]
            inputs = tuple(new_id[alias.get(j, j)] for j in node.inputs)
            out_nodes.append(Node(node.op, inputs))
            shapes.append(self.shapes[i + 1])
            new_id[i + 1] = len(out_nodes)
        return BoundGraph(out_nodes, shapes, name)


def _last_axis(affine: Affine, shape: tuple[int, ...]) -> bool:
    scale = np.shape(ops.convert_to_numpy(affine.scale()))
    return all(d == 1 for d in scale[:-1]) and (not scale or scale[-1] in (1, shape[-1]))


def _fold(op: Dense | Conv, affine: Affine) -> Dense | Conv:
    """``affine(op(x))`` as one Dense / Conv: ``W s`` and ``b s + t``."""
    kernel, bias, scale, shift = op.kernel, op.bias, affine.scale, affine.bias

    def folded_kernel() -> Any:
        return kernel() * ops.reshape(scale(), (-1,))

    def folded_bias() -> Any:
        s = ops.reshape(scale(), (-1,))
        out = ops.zeros((kernel().shape[-1],), s.dtype)
        if bias is not None:
            out = out + bias() * s
        if shift is not None:
            out = out + ops.reshape(shift(), (-1,))
        return out

    new = type(op).__new__(type(op))
    new.__dict__.update(op.__dict__)
    new.kernel, new.bias = folded_kernel, folded_bias
    return new
