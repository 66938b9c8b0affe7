"""How many inputs and neurons a bound pass takes at once, from an estimate of its memory.

CROWN's intermediate bounds hold ``2 * chunk * batch`` rows of coefficients on
every tensor between a node and the input: a tensor of ``n`` neurons, bounded
in chunks of ``chunk`` of its neurons, costs about::

    bytes = 2 * chunk * batch * 4 * (largest_upstream_tensor * BACKWARD_COPIES
                                     + largest_convolution_workspace)

plus, per input, a few copies of every tensor (values, intervals,
relaxations) and the candidate lines of the smooth relaxations; a transposed convolution's
workspace is its kernel's size times its larger side (im2col). `plan` picks
the largest batch (halving from ``batch_size``) whose chunks can all hold at
least ``MIN_CHUNK`` neurons within ``max_memory``, then the largest chunks;
if even one input and one neuron at a time do not fit, it refuses with the
estimate. IBP and Lipschitz need only the per-input part.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from keras import ops

from keras_lpc.robustness.certify._graph import BoundGraph
from keras_lpc.robustness.certify._ops import Conv

#: Live copies of a coefficient tensor in a backward pass (A, A+, A-, products, sums, and
#: what the compiler keeps alive), calibrated on the demo CNN (JAX, CPU).
BACKWARD_COPIES = 16
#: Copies of each tensor kept per input (values, intervals, relaxation, temporaries).
PER_INPUT_COPIES = 12
#: Extra per-input copies of the largest tensor while choosing smooth relaxations.
RELAX_COPIES = 80
#: Smallest chunk worth taking before the batch is halved.
MIN_CHUNK = 16


def default_max_memory() -> int:
    """A quarter of the machine's physical memory (4 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (AttributeError, ValueError, OSError):
        return 4 * 2**30


@dataclass(frozen=True)
class Plan:
    """``batch`` inputs per compiled call, ``chunks`` neurons per CROWN pass (by tensor id),
    ``bytes`` the estimated peak memory."""

    batch: int
    chunks: dict[int, int]
    bytes: int


def _upstream(graph: BoundGraph, tensor: int) -> int:
    """Floats per coefficient row of a backward pass from ``tensor``: the largest tensor it
    crosses times its live copies, plus the largest convolution workspace."""
    largest, workspace, stack, seen = 0, 0, [tensor], set()
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        largest = max(largest, math.prod(graph.shapes[t]))
        if t > 0:
            node = graph.nodes[t - 1]
            if isinstance(node.op, Conv):
                size = math.prod(ops.shape(node.op.kernel())[:-2])
                sides = max(math.prod(graph.shapes[t]), math.prod(graph.shapes[node.inputs[0]]))
                workspace = max(workspace, size * sides)
            stack.extend(node.inputs)
    return largest * BACKWARD_COPIES + workspace


def crown_targets(graph: BoundGraph) -> list[int]:
    """Tensors whose bounds CROWN computes by backward passes (nonlinear nodes' inputs
    outside the input's affine prefix)."""
    out = []
    for t in graph.nonlinear():
        z = graph.nodes[t - 1].inputs[0]
        if z not in graph.prefix and z not in out:
            out.append(z)
    return out


def plan(
    graph: BoundGraph, method: str, batch_size: int, max_memory: int, itemsize: int = 4
) -> Plan:
    """The `Plan` of the module docstring.

    Raises:
        ValueError: one input and one neuron at a time already exceed ``max_memory``.
    """
    sizes = [math.prod(s) for s in graph.shapes]
    largest = max(sizes)

    def fixed(batch: int) -> int:
        spec = graph.classes * batch * largest * BACKWARD_COPIES
        return itemsize * (batch * (sum(sizes) * PER_INPUT_COPIES + largest * RELAX_COPIES) + spec)

    targets = crown_targets(graph) if method == "crown" else []
    per_row = {z: 2 * _upstream(graph, z) * itemsize for z in targets}
    batch = batch_size
    while True:
        room = max_memory - fixed(batch)
        chunks = {z: min(math.prod(graph.shapes[z]), room // (batch * per_row[z])) for z in targets}
        small = all(c >= min(MIN_CHUNK, math.prod(graph.shapes[z])) for z, c in chunks.items())
        if room > 0 and (small or (batch == 1 and all(c >= 1 for c in chunks.values()))):
            peak = max((chunks[z] * batch * per_row[z] for z in targets), default=0)
            return Plan(batch, chunks, fixed(batch) + peak)
        if batch == 1:
            need = fixed(1) + max((per_row[z] for z in targets), default=0)
            raise ValueError(
                f"`max_memory` must be at least {need:,} bytes ({need / 2**30:.2f} GiB) for "
                f"method {method!r} on this model: one input and one neuron at a time need that "
                f"much (estimate). Received: max_memory={max_memory:,}"
            )
        batch = max(1, batch // 2)
