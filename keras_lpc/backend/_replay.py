"""Cheaper replays of traced torch graphs: constants folded, the graph run by TorchScript.

A traced graph (`keras_lpc.backend._trace`) replayed by ``torch.fx`` runs one
line of Python per aten op, several microseconds each, which on the small
tensors of an attack step costs more than the arithmetic. Two rewrites keep
every value bit for bit (the same aten kernels on the same inputs):

* `fold`: ops that read no graph input (the tensors Keras makes of Python
  numbers, ``arange`` and their casts) are computed once and stored in the
  graph, and an op repeated on the same arguments (a one-hot of the labels that
  three loss terms each build) is computed once;
* `script`: the graph recorded by ``torch.jit.trace`` and run by TorchScript's
  interpreter (C++, no Python per op) with its optimisations off
  (``torch.jit.optimized_execution(False)``: no fusion, no peephole rewrites,
  so the kernels and their order stay those of the graph). Where autograd is on,
  the plain graph runs instead.

and a loop's body replayed step after step computes once what reads only its
fixed tensors (`hoist`, `hoisted`: the loop's closure and the model's weights).
The caller keeps a rewritten graph only if it reproduces the plain graph's
outputs exactly (`same`; `keras_lpc.backend._trace`). `flatten` and `pack` are
``keras.tree``'s, without its cost for the tuples of tensors a loop passes.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable
from typing import Any

import keras

log = logging.getLogger("keras_lpc.backend")


def _tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _foldable(node: Any) -> bool:
    import torch

    target = node.target
    return (
        node.op == "call_function"
        and isinstance(target, torch._ops.OpOverload)
        and not target._schema.is_mutable
        and torch.Tag.nondeterministic_seeded not in target.tags
    )


def fold(graph: Any) -> Any | None:
    """A copy of ``graph`` with the ops that read no input computed once, or None if none."""
    import torch
    from torch.fx.node import map_arg

    with warnings.catch_warnings():  # torch's own pytree deprecation inside deepcopy
        warnings.simplefilter("ignore", FutureWarning)
        graph = copy.deepcopy(graph)
    nodes = graph.graph
    output = next(n for n in nodes.nodes if n.op == "output")
    results = set(output.all_input_nodes)
    known: dict[Any, Any] = {}
    count = 0
    for node in list(nodes.nodes):
        if node.op == "get_attr":
            known[node] = getattr(graph, node.target)
            continue
        if not _foldable(node) or not all(a in known for a in node.all_input_nodes):
            continue
        args, kwargs = map_arg((node.args, node.kwargs), lambda a: known[a])
        value = node.target(*args, **kwargs)
        known[node] = value
        if not isinstance(value, torch.Tensor) or node in results:
            continue  # an output stays computed: a fresh tensor per call
        name = f"_keras_lpc_folded_{count}"
        count += 1
        graph.register_buffer(name, value)
        with nodes.inserting_before(node):
            constant = nodes.get_attr(name)
        constant.meta = dict(node.meta)
        node.replace_all_uses_with(constant)
    count += _merge(nodes)
    if not count:
        return None
    nodes.eliminate_dead_code()
    graph.recompile()
    return graph


def _key(value: Any) -> Any:
    """A hashable form of an op's argument: graph nodes by identity, numbers with their type
    (``1``, ``1.0`` and ``True`` differ; so do ``0.0`` and ``-0.0``)."""
    import torch.fx

    if isinstance(value, torch.fx.Node):
        return ("node", id(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _key(v)) for k, v in sorted(value.items())))
    if isinstance(value, (bool, int, float, complex)):
        return (type(value).__name__, repr(value))
    hash(value)  # dtypes, devices, layouts, strings, None; anything else stops the merge
    return (type(value).__name__, value)


def _merge(nodes: Any) -> int:
    """Merge the ops of ``nodes`` that repeat one op on the same arguments; how many."""
    seen: dict[Any, Any] = {}
    merged = 0
    for node in list(nodes.nodes):
        if not _foldable(node):
            continue
        try:
            key = (node.target, _key(node.args), _key(node.kwargs))
        except TypeError:  # an argument that cannot be compared
            continue
        first = seen.get(key)
        if first is None:
            seen[key] = node
            continue
        node.replace_all_uses_with(first)
        merged += 1
    return merged


def script(graph: Any, values: list[Any], inputs: list[Any]) -> Any:
    """``graph(values, inputs)`` recorded by ``torch.jit.trace`` and run by TorchScript.

    Returns a function of ``(values, inputs)`` like ``graph``'s; raises whatever
    stops the recording.
    """
    import torch

    split = len(values)

    def flat(*tensors: Any) -> Any:
        return graph(list(tensors[:split]), list(tensors[split:]))

    # fresh copies: the recorder would take one tensor passed twice for one input
    example = tuple(t.detach().clone() for t in (*values, *inputs))
    with warnings.catch_warnings(), torch.jit.optimized_execution(False), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(flat, example, check_trace=False)

    def call(values: list[Any], inputs: list[Any]) -> Any:
        if torch.is_grad_enabled():
            return graph(values, inputs)
        with torch.jit.optimized_execution(False):
            return traced(*values, *inputs)

    call.plain = graph  # type: ignore[attr-defined]
    return call


def _record(graph: Any, example: tuple[Any, ...]) -> Any:
    """``graph`` (flat tensor arguments) recorded by ``torch.jit.trace``."""
    import torch

    example = tuple(t.detach().clone() for t in example)  # see `script`
    with warnings.catch_warnings(), torch.jit.optimized_execution(False), torch.no_grad():
        warnings.simplefilter("ignore")
        return torch.jit.trace(graph, example, check_trace=False)


def hoist(graph: Any, fixed: int, values: list[Any], inputs: list[Any]) -> Any | None:
    """``prepare(values, first) -> step(rest)``: the ops of ``graph`` that read only the
    variables and the first ``fixed - len(values)`` inputs computed once by ``prepare``,
    the rest per ``step``; both run by TorchScript. None where nothing can be hoisted.

    For a loop body bound once per loop: its closure's tensors (the inputs, labels,
    one-hot encodings built from them) are the same at every step.
    """
    import torch
    import torch.fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        main = copy.deepcopy(graph)
    main.graph._codegen = torch.fx.graph.CodeGen()  # flat arguments, in placeholder order
    places = [n for n in main.graph.nodes if n.op == "placeholder"]
    still = set(places[:fixed])
    for node in main.graph.nodes:
        if node.op == "get_attr" or (
            _foldable(node) and all(a in still for a in node.all_input_nodes)
        ):
            still.add(node)
    edge = [
        n
        for n in main.graph.nodes
        if n in still and n.op == "call_function" and any(u not in still for u in n.users)
    ]
    if not edge:
        return None
    pre_graph = torch.fx.Graph()
    env: dict[Any, Any] = {}
    for node in main.graph.nodes:
        if node in still and (node.op != "placeholder" or node in places[:fixed]):
            env[node] = pre_graph.node_copy(node, lambda a: env[a])
    pre_graph.output([env[n] for n in edge])
    pre = torch.fx.GraphModule(main, pre_graph)
    with main.graph.inserting_after(places[-1]):
        for node in reversed(edge):
            new = main.graph.placeholder(f"{node.name}_hoisted")
            new.meta = dict(node.meta)
            node.replace_all_uses_with(new)
    main.graph.eliminate_dead_code()
    main.recompile()
    flat = [*values, *inputs]
    pre_run = _record(pre, tuple(flat[:fixed]))
    kept = tuple(pre_run(*flat[:fixed]))
    main_run = _record(main, (*flat, *kept))

    def prepare(values: list[Any], first: list[Any]) -> Any:
        with torch.jit.optimized_execution(False), torch.no_grad():
            kept = tuple(pre_run(*values, *first))

        def step(rest: list[Any]) -> Any:
            with torch.jit.optimized_execution(False):
                return main_run(*values, *first, *rest, *kept)

        return step

    return prepare


def same(a: Any, b: Any) -> bool:
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)))
    return bool(torch.equal(a, b))


def all_same(got: Any, want: Any) -> bool:
    """Whether the two lists of tensors are equal one by one (`same`), and as long."""
    return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want))


WHOLE = object()  # a binding's first call ran the whole graph


def grad() -> bool:
    import torch

    return torch.is_grad_enabled()


def hoisted(graph: Any, values: list[Any], fixed: list[Any], rest: list[Any]) -> Any:
    """The step of a binding called more than once: ``graph``'s loop-invariant ops computed
    once (`hoist`, split once per graph and checked against it bit for bit on
    its first use), or ``graph`` itself."""
    plan = getattr(graph, "hoist", None)
    if plan is None:
        return graph
    if not callable(plan):
        graph.hoist = None
        folded, count = plan
        inputs = fixed + rest
        try:
            prepare = hoist(folded, len(values) + count, values, inputs)
            if prepare is None:
                return graph
            got, want = prepare(values, fixed)(rest), graph(values, inputs)
            if not all_same(got, want):
                log.debug("keras_lpc: a hoisted graph disagrees with its graph; not hoisted")
                return graph
        except Exception as err:  # noqa: BLE001 - no hoisting then
            log.debug("keras_lpc: nothing hoisted (%s)", err)
            return graph
        graph.hoist = plan = prepare
    return plan(values, fixed)


def flatten(value: Any) -> list[Any]:
    """``keras.tree.flatten(value)``, without its cost for tensors in tuples and lists."""
    if _tensor(value):
        return [value]
    if type(value) in (tuple, list):
        out: list[Any] = []
        for v in value:
            if _tensor(v):
                out.append(v)
            elif type(v) in (tuple, list):
                out.extend(flatten(v))
            else:
                return keras.tree.flatten(value)
        return out
    return keras.tree.flatten(value)


def pack(spec: Any, flat: list[Any]) -> Any:
    """``keras.tree.pack_sequence_as(spec, flat)``, directly for one tensor or a flat tuple."""
    if spec == 0:
        return flat[0]
    if type(spec) is tuple and all(s == 0 for s in spec):
        return tuple(flat)
    return keras.tree.pack_sequence_as(spec, flat)


#: Replays of a traced graph before it is promoted to TorchScript (`Lazy`): recording
#: and checking a TorchScript graph costs about as much as tens of replays, so a graph
#: replayed only a few times (a one-off call, a test's tiny model) never pays for it;
#: the attack loops replay theirs hundreds of times. (The suite's ensemble and decision
#: tests on torch: 84 s promoting every graph at once, 75 s with this; most of the rest
#: was tracing, see `keras_lpc.backend._trace.TRACE_AT`.)
PROMOTE_AFTER = 12


class Lazy:
    """A checked traced graph, replayed as it is until its `PROMOTE_AFTER`-th call, then by
    its fast form (`keras_lpc.backend._trace`'s `_fast`: TorchScript, hoisting) from then on."""

    def __init__(self, promote: Callable[[], Any], graph: Any) -> None:
        self.promote, self.graph, self.fast, self.calls = promote, graph, None, 0

    @property
    def hoist(self) -> Any:  # read and written by `_replay.hoisted`: the fast form's
        return getattr(self.fast, "hoist", None)

    @hoist.setter
    def hoist(self, value: Any) -> None:
        if self.fast is not None and self.fast is not self.graph:
            self.fast.hoist = value

    def __call__(self, values: list[Any], inputs: list[Any]) -> Any:
        if self.fast is not None:
            return self.fast(values, inputs)
        self.calls += 1
        if self.calls >= PROMOTE_AFTER:
            self.fast = self.promote()
            self.promote = None  # the first call's tensors, no longer needed
        return self.graph(values, inputs)


def promoted(graph: Any) -> bool:
    """Whether ``graph`` is a `Lazy` graph that has its fast form now."""
    return isinstance(graph, Lazy) and graph.fast is not None
