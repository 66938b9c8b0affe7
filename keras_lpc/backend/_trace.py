"""Python functions of torch tensors traced once into graphs of aten ops, replayed per call.

PyTorch runs ``keras.ops`` eagerly: every op pays Keras' Python (tens of
microseconds) and every layer call its ``Layer.__call__`` (about a millisecond),
so a small model's attack step costs far more in Python than in arithmetic.
`Graphs.run(fn, *args)` records the aten ops ``fn`` performs
(``torch.fx.experimental.proxy_tensor.make_fx`` on fake tensors, so nothing is
computed while tracing) and replays that graph on later calls with the same
signature, like ``jax.jit`` without a compiler:

* the tensors ``fn`` reads become graph inputs: its arguments, the model's
  variables (read through a ``keras.StatelessScope``, so the graph always sees
  the current weights) and the tensors held in its closure and in the closures
  of the functions it holds (swapped for fake tensors while tracing), so a new
  closure of the same code with new tensors reuses the graph;
* everything else that ``fn`` depends on is part of the cache key: the code
  objects, Python values in the closures (by value), other objects (by
  identity, kept alive), the tensors' shapes, dtypes and devices;
* what cannot be traced falls back to running ``fn`` eagerly, for good and
  with a debug log: data-dependent Python control flow (``bool(tensor)``,
  ``int(tensor)``), a tensor reached other than through the closures (a real
  tensor meets a fake one), an output that is not tensors. The first call of a
  signature runs both the graph and ``fn`` and keeps the graph only if they agree
  exactly (the graph replays the same aten ops, so they do).

A kept graph is replayed by TorchScript with its constants folded and its repeated
operations merged (`keras_lpc.backend._replay`: the same aten kernels, checked bit
for bit on the first call), and a binding that calls it again (a loop's body)
computes the operations that read only the closure's tensors and the variables
once. With ``set_compile(True)`` the graphs go on to ``torch.compile`` instead
(inductor; it needs a C++ compiler, checked once: without one the plain graphs
run and a debug log says why).
"""

from __future__ import annotations

import contextvars
import logging
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_lpc.backend._replay import (
    WHOLE,
    Lazy,
    all_same,
    flatten,
    fold,
    grad,
    hoisted,
    pack,
    promoted,
    script,
)

log = logging.getLogger("keras_lpc.backend")

_TRACING: contextvars.ContextVar[bool] = contextvars.ContextVar("keras_lpc_tracing", default=False)
_FAILED = object()
_COMPILE = {"on": False, "broken": None}
#: The call of a signature that traces it; the ones before run eagerly. Tracing,
#: checking and tidying a graph took 0.5 s (about 0.35 s `make_fx`, 0.19 s the layout
#: pass), the time of tens of eager calls of a small model's loop body, so a signature
#: seen only a few times (a test's short loop, a one-off forward pass) is never traced;
#: the count lasts as long as the compiled function, so a second call of an attack
#: replays from its first step. (The suite's attack tests on torch: 21 s before the
#: loops were replayed, 84 s tracing every signature on its first call.)
TRACE_AT = 24


def tracing() -> bool:
    """Whether a trace is being recorded (nested traced functions then run inline)."""
    return _TRACING.get()


def set_compile(on: bool) -> None:
    """Send new graphs to ``torch.compile`` (inductor) or not (the default)."""
    _COMPILE["on"] = bool(on)


class _Same:
    """A static object in a cache key: equal by identity, kept alive by the key."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _holds_tensor(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_holds_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_tensor(v) for v in value.values())
    return _is_tensor(value)


def _static(value: Any) -> Any:
    """A hashable key for a non-tensor value (by value for plain data, else by identity)."""
    import numpy as np

    if isinstance(value, float):
        return (float, repr(value))  # NaN equal to NaN
    if value is None or isinstance(value, (bool, int, complex, str, bytes)):
        return (type(value), value)
    if isinstance(value, (np.ndarray, np.generic)):
        value = np.asarray(value)
        return ("np", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(_static(v) for v in value))
    if isinstance(value, dict):
        return (dict, tuple((k, _static(v)) for k, v in sorted(value.items(), key=repr)))
    if isinstance(value, types.CodeType):
        return value
    return _Same(value)


def _scan(fn: Any, cells: list, statics: list, seen: set) -> None:
    """The closure cells of ``fn`` (and of functions in them) that hold tensors, and a key of
    everything else it closes over."""
    if not isinstance(fn, types.FunctionType):
        statics.append(_static(fn))
        return
    if id(fn) in seen:
        statics.append(("seen", fn.__code__))
        return
    seen.add(id(fn))
    statics.append(fn.__code__)
    statics.append(_static(fn.__defaults__))
    statics.append(_static(fn.__kwdefaults__))
    for cell in fn.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not filled yet
            statics.append("empty")
            continue
        if isinstance(value, types.FunctionType):
            _scan(value, cells, statics, seen)
        elif _holds_tensor(value):
            cells.append(cell)
            statics.append(("cell", len(cells) - 1))
        else:
            statics.append(_static(value))


def _leaf_key(value: Any) -> Any:
    if _is_tensor(value):
        return (tuple(value.shape), value.dtype, value.device)
    if isinstance(value, types.FunctionType):
        return "function"  # scanned: its code and closure are in the key
    return _static(value)


class Graphs:
    """Traced graphs of Python functions, per signature, reading ``variables`` as inputs."""

    def __init__(self, variables: Sequence[Any]) -> None:
        self.variables = list(variables)
        self.store: dict[Any, Any] = {}
        self.seen: dict[Any, int] = {}  # key -> eager calls before its trace

    def values(self) -> list[Any]:
        """The variables' current values (detached: graphs compute no weight gradients)."""
        return [v.value.detach() for v in self.variables]

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` through its traced graph (traced on the first call of a signature)."""
        return self.bind(fn)(*args)

    def bind(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` with its closure read once: ``bound(*args)`` runs `run`'s graph of ``fn``.

        The closure's tensors are read at binding and the variables at the first replay (an
        attack's loop changes no weights), so a loop binds its body once.
        """
        if tracing():
            return fn
        cells: list = []
        statics: list = []
        _scan(fn, cells, statics, set())
        parts = [cell.cell_contents for cell in cells]
        part_leaves = keras.tree.flatten(parts)
        fixed = (tuple(statics), tuple(_leaf_key(v) for v in part_leaves))
        part_tensors = [v for v in part_leaves if _is_tensor(v)]

        values: list[Any] = []  # the variables' values, read at the first replay
        steps: dict[Any, Any] = {}  # key -> this binding's step (`_replay.hoist`)

        def bound(*args: Any) -> Any:
            if tracing():
                return fn(*args)
            leaves = flatten(args)
            extra_cells: list = []
            extra: list = []
            for a in leaves:
                if isinstance(a, types.FunctionType):
                    _scan(a, extra_cells, extra, set())
            if extra_cells:  # functions passed as arguments that hold tensors: run eagerly
                return fn(*args)
            key = (fixed, tuple(extra), tuple(_leaf_key(v) for v in leaves))
            entry = self.store.get(key)
            if entry is _FAILED:
                return fn(*args)
            rest = [v for v in leaves if _is_tensor(v)]
            if entry is None:
                seen = self.seen[key] = self.seen.get(key, 0) + 1
                if seen < TRACE_AT and not _COMPILE["on"]:  # eager until `TRACE_AT`
                    return fn(*args)
                return self._first(key, fn, args, cells, parts, part_tensors + rest)
            graph, out_spec = entry
            if not values:
                values.extend(self.values())
            step = steps.get(key)
            if step is None or grad():  # a first call: the whole graph
                steps[key] = WHOLE if step is None else step
                return pack(out_spec, graph(values, part_tensors + rest))
            if step is WHOLE or (step is graph and promoted(graph)):
                # called again (or just promoted): hoist what does not change (`_replay.hoist`)
                step = steps[key] = hoisted(graph, values, part_tensors, rest)
            if step is graph:
                return pack(out_spec, graph(values, part_tensors + rest))
            return pack(out_spec, step(rest))

        return bound

    def _first(self, key, fn, args, cells, parts, tensors) -> Any:
        traced = self._trace(fn, args, cells, parts, tensors)
        want = fn(*args)
        self.store[key] = _FAILED
        if traced is None:
            return want
        graph, out_spec = traced
        flat = keras.tree.flatten(want)
        for candidate in (self._tidy(graph, tensors), graph):
            if candidate is None:
                continue
            try:
                got = candidate(self.values(), tensors)
                ok = all_same(got, flat)
            except Exception as err:  # noqa: BLE001 - any failure of the graph: next one
                log.debug("keras_lpc: a traced graph of %s failed (%s)", _name(fn), err)
                ok = False
            if ok:
                fixed = sum(_is_tensor(v) for v in keras.tree.flatten(parts))

                def promote(candidate=candidate, fixed=fixed) -> Any:
                    return self._fast(candidate, tensors, flat, fixed)

                # torch.compile, asked for: at once; TorchScript: once it pays (`Lazy`)
                lazy = promote() if _COMPILE["on"] else Lazy(promote, candidate)
                self.store[key] = (lazy, out_spec)
                return want
        log.debug("keras_lpc: the traced graph of %s disagrees with it; eager", _name(fn))
        return want

    def _fast(self, graph: Any, tensors: list[Any], want: list[Any], fixed: int) -> Any:
        """``graph`` compiled when asked (`set_compile`), else its constants folded and run by
        TorchScript (`keras_lpc.backend._replay`) if that reproduces ``want`` exactly, with
        ``prepare`` (`_replay.hoist`: the first ``fixed`` tensors fixed) where that does too."""
        if _COMPILE["on"]:
            return _compiled(graph)
        values = self.values()
        try:
            folded = fold(graph) or graph
            fast = script(folded, values, tensors)
            if not all_same(fast(values, tensors), want):
                log.debug("keras_lpc: the TorchScript replay disagrees with its graph")
                return graph
        except Exception as err:  # noqa: BLE001 - the plain graph then
            log.debug("keras_lpc: TorchScript replay skipped (%s)", err)
            return graph
        fast.hoist = (folded, fixed)  # `_replay.hoisted` splits it when a binding calls it again
        return fast

    def _tidy(self, graph: Any, tensors: list[Any]) -> Any:
        from keras_lpc.backend._layout import tidy

        try:
            return tidy(graph, self.values(), tensors)
        except Exception as err:  # noqa: BLE001 - the plain graph then
            log.debug("keras_lpc: layout pass skipped (%s)", err)
            return None

    def _trace(self, fn, args, cells, parts, tensors) -> tuple[Any, Any] | None:
        from torch.fx.experimental.proxy_tensor import make_fx

        variables = self.variables
        structure = (parts, args)
        leaves = keras.tree.flatten(structure)
        spec: dict[str, Any] = {}

        def pure(values: list[Any], inputs: list[Any]) -> list[Any]:
            it = iter(inputs)
            rebuilt = [next(it) if _is_tensor(v) else v for v in leaves]
            new_parts, new_args = keras.tree.pack_sequence_as(structure, rebuilt)
            for cell, value in zip(cells, new_parts):
                cell.cell_contents = value
            try:
                with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                    out = fn(*new_args)
            finally:
                for cell, value in zip(cells, parts):
                    cell.cell_contents = value
            flat = keras.tree.flatten(out)
            if not all(_is_tensor(t) for t in flat):
                raise TypeError("outputs that are not tensors")
            spec["out"] = keras.tree.map_structure(lambda _: 0, out)
            return flat

        token = _TRACING.set(True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # copies: make_fx would merge inputs that are one tensor (the same
                # start tensor in two state slots) into one graph input
                copies = [t.detach().clone() for t in tensors]
                values = [v.clone() for v in self.values()]
                graph = make_fx(pure, tracing_mode="fake")(values, copies)
        except Exception as err:  # noqa: BLE001 - whatever stops the trace: run eagerly
            reason = str(err).strip().split("\n")[0][:200]
            log.debug("keras_lpc: %s runs eagerly (%s: %s)", _name(fn), type(err).__name__, reason)
            return None
        finally:
            _TRACING.reset(token)
        graph.graph.eliminate_dead_code()
        graph.recompile()
        return graph, spec["out"]


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _compiler() -> str | None:
    """Why ``torch.compile`` cannot run here (no C++ compiler on the path), or None."""
    import os
    import shutil

    names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if any(name and shutil.which(name) for name in names):
        return None
    return "no C++ compiler found (CXX, g++, c++, clang++)"


def _compiled(graph: Any) -> Any:
    """``graph`` through ``torch.compile`` when asked and a compiler works, else itself."""
    if not _COMPILE["on"] or _COMPILE["broken"]:
        return graph
    if _COMPILE["broken"] is None:  # checked once per process
        _COMPILE["broken"] = _compiler() or ""
        if _COMPILE["broken"]:
            log.debug("keras_lpc: torch.compile unavailable (%s); plain graphs", _COMPILE["broken"])
            return graph
    import torch

    compiled = torch.compile(graph, dynamic=False)
    state = {"use": None}  # None: not tried yet; True: compiled; False: the plain graph

    def call(values: list[Any], inputs: list[Any]) -> Any:
        if state["use"] is False:
            return graph(values, inputs)
        if state["use"]:
            return compiled(values, inputs)
        try:
            out = compiled(values, inputs)
        except Exception as err:  # noqa: BLE001 - a compiler or inductor failure: plain graph
            _COMPILE["broken"] = f"{type(err).__name__}: {err}"
            log.debug("keras_lpc: torch.compile failed (%s); plain graphs", _COMPILE["broken"])
            state["use"] = False
            return graph(values, inputs)
        state["use"] = True
        return out

    return call
