"""Memory-layout copies removed from traced torch graphs (values unchanged, bit for bit).

Keras runs a channels-last convolution on torch as ``permute`` to NCHW, a
``contiguous`` copy, then the copy back to channels-last that torch's
convolution asks for, and max-pools a contiguous NCHW copy: on the demo's CNN
these copies and the NCHW pooling took a third of a 5,120-input forward pass.
`tidy` rewrites a traced graph (``torch.fx``) with three rules, each a change of
memory layout only:

* a ``clone`` to contiguous NCHW whose only users max-pool it is dropped (the
  maximum of a window does not depend on the layout);
* a ``clone`` of a ``clone`` used nowhere else copies the original instead;
* a ``clone`` to the layout its input already has is dropped.

The graph's tensor metadata is propagated again (fake tensors) between the rules,
and the caller keeps the rewritten graph only if it reproduces the original's
outputs exactly (`keras_lpc.backend._trace`).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any


def _propagate(graph: Any, values: list[Any], inputs: list[Any]) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    fake = [[mode.from_tensor(t) for t in part] for part in (values, inputs)]
    FakeTensorProp(graph, mode).propagate_dont_convert_inputs(*fake)


def _clones(graph: Any) -> list[Any]:
    import torch

    return [
        n
        for n in graph.graph.nodes
        if n.op == "call_function" and n.target == torch.ops.aten.clone.default
    ]


def _refresh(graph: Any) -> None:
    graph.graph.eliminate_dead_code()
    graph.recompile()


def tidy(graph: Any, values: list[Any], inputs: list[Any]) -> Any | None:
    """A copy of ``graph`` without its layout-only copies, or None when none was found."""
    import torch

    with warnings.catch_warnings():  # torch's own pytree deprecation inside deepcopy
        warnings.simplefilter("ignore", FutureWarning)
        graph = copy.deepcopy(graph)
    pool = torch.ops.aten.max_pool2d_with_indices.default
    changed = False

    def layout(node: Any) -> Any:
        return node.kwargs.get("memory_format", torch.preserve_format)

    for node in _clones(graph):
        if layout(node) == torch.contiguous_format and node.users:
            if all(user.target == pool for user in node.users):
                node.replace_all_uses_with(node.args[0])
                changed = True
    _refresh(graph)
    for node in _clones(graph):
        source = node.args[0]
        if getattr(source, "target", None) == torch.ops.aten.clone.default:
            if len(source.users) == 1:
                node.replace_input_with(source, source.args[0])
                changed = True
    _refresh(graph)
    _propagate(graph, values, inputs)
    for node in _clones(graph):
        value = node.args[0].meta.get("val") if hasattr(node.args[0], "meta") else None
        kind = layout(node)
        if kind != torch.preserve_format and value is not None:
            if value.is_contiguous(memory_format=kind):
                node.replace_all_uses_with(node.args[0])
                changed = True
    _refresh(graph)
    return graph if changed else None
