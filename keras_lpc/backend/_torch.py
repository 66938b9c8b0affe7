"""PyTorch: input gradients (``torch.func``), traced graphs in place of a compiler, loops whose
bodies replay traced graphs, and one intra-op thread for the small tensors of attack loops."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np

from keras_lpc.backend._trace import Graphs, tracing

# the graphs of the `jit` call running now: loops and products inside it trace into them
_CURRENT: contextvars.ContextVar[Graphs | None] = contextvars.ContextVar(
    "keras_lpc_graphs", default=None
)
_THREADS = {"loop": 1}


class _Loop(Exception):
    """Raised while tracing a function that runs a loop: it runs eagerly, its loop traced."""


def _products(
    fn: Callable[[Any], Any], x: Any, cotangent_fn: Callable[[Any, Any], Any], aux: Any
) -> tuple[Any, Any]:
    import torch

    fn = getattr(fn, "raw", fn)  # a `Traced` function: its Python (traced as a whole here)
    out, pull = torch.func.vjp(fn, x)
    out = out.detach()
    cot = cotangent_fn(out, aux)
    # K backward passes, not one vmapped pass: on a channels-last CNN 24 % faster
    # (DeepFool, benchmarks/deepfool.py's CNN, 1.91 -> 1.46 s, the same perturbations):
    # the vmapped graph copies K x N activations between layouts and runs ReLU's
    # backward across mismatched layouts (50 ms a call against 13 ms); the MLP's time is
    # unchanged. Not bit for bit everywhere: on the demo's SiLU CNN DeepFool distances
    # moved by up to 8e-7 relative (the recorded results hold to 1e-5)
    return out, torch.stack([pull(c)[0] for c in cot])


def vjp(
    fn: Callable[[Any], Any], x: Any, cotangent_fn: Callable[[Any, Any], Any], aux: Any
) -> tuple[Any, Any]:
    """Scores and K vector-Jacobian products (see `keras_lpc.backend.vjp`); inside a `jit`
    call, one traced graph of the forward pass, the cotangents and the backward passes."""
    graphs = _CURRENT.get()
    if graphs is None or tracing():
        return _products(fn, x, cotangent_fn, aux)
    return graphs.run(_products, fn, x, cotangent_fn, aux)


def normal(like: Any, count: int, seed: Any, index: Any) -> Any:
    """Normal samples (count, *like.shape) from ``seed`` (2,) and ``index``, on ``like``'s device."""
    import torch

    first, second = (int(v) for v in seed.tolist())
    generator = torch.Generator(device=like.device)
    generator.manual_seed(((first & 0xFFFFFFFF) << 32 | (second & 0xFFFFFFFF)) + 7919 * int(index))
    return torch.randn(
        (count, *like.shape), generator=generator, dtype=like.dtype, device=like.device
    )


@contextlib.contextmanager
def threads() -> Iterator[None]:
    """At most ``_THREADS["loop"]`` intra-op threads inside (restored after)."""
    import torch

    before, limit = torch.get_num_threads(), _THREADS["loop"]
    if limit is None or limit >= before:
        yield
        return
    torch.set_num_threads(limit)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def set_threads(limit: int | None) -> None:
    """The intra-op thread limit of `threads` (``None``: torch's own count)."""
    _THREADS["loop"] = limit


def device_of(variables: Sequence[Any]) -> Any:
    """The device of the model's first variable, else Keras' default device."""
    for v in variables:
        return v.value.device
    return keras.ops.zeros(()).device


def _to_device(a: Any, device: Any) -> Any:
    import torch

    if isinstance(a, torch.Tensor):
        return a.to(device)
    if isinstance(a, keras.Variable):
        return a.value.to(device)
    return torch.as_tensor(np.asarray(a), device=device)


def jit(fn: Callable[..., Any], variables: list[Any]) -> Callable[..., Any]:
    """``fn`` on tensors placed on the model's device, under ``torch.no_grad`` and `threads`:
    one traced graph per signature where ``fn`` has no loop, else run eagerly with its
    loops' bodies and its products traced (see `keras_lpc.backend._trace`)."""
    import torch

    graphs = Graphs(variables)

    def call(*args: Any) -> Any:
        device = device_of(variables)
        tensors = [_to_device(a, device) for a in args]
        token = _CURRENT.set(graphs)
        try:
            # keras.ops constants (zeros, arange...) on the model's device, not Keras' default
            with threads(), torch.no_grad(), keras.device(str(device)):
                return graphs.run(fn, *tensors)
        finally:
            _CURRENT.reset(token)

    return call


class Traced:
    """A function of one batch run through traced graphs (``raw`` is the function itself)."""

    def __init__(self, fn: Callable[[Any], Any], variables: Sequence[Any]) -> None:
        self.raw = fn
        self.graphs = Graphs(variables)

    def __call__(self, x: Any) -> Any:
        if tracing():
            return self.raw(x)
        return self.graphs.run(self.raw, x)


def traceable(fn: Callable[[Any], Any], variables: Sequence[Any]) -> Callable[[Any], Any]:
    """``fn`` replayed from traced graphs (one per input signature)."""
    return Traced(fn, variables)


def bind(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` replayed from traced graphs inside a `jit` call (its closure read now)."""
    graphs = _CURRENT.get()
    if graphs is None or tracing():
        return fn
    return graphs.bind(fn)


def _device_of_state(state: Any) -> Any:
    import torch

    for leaf in keras.tree.flatten(state):
        if isinstance(leaf, torch.Tensor):
            return leaf.device
    return None


#: Loops of at most this many steps, their bounds Python integers, are unrolled in a trace.
UNROLL = 8


def _short(lower: Any, upper: Any) -> bool:
    plain = all(isinstance(b, int) and not isinstance(b, bool) for b in (lower, upper))
    return plain and upper - lower <= UNROLL


def fori_loop(lower: Any, upper: Any, body: Callable[[Any, Any], Any], state: Any) -> Any:
    """``keras.ops.fori_loop`` with ``body(k, state)`` replayed from one traced graph, ``k`` an
    int32 tensor (as under ``jax.jit``), inside a `jit` call."""
    import torch

    if tracing():
        # a short loop of known length is unrolled into the graph; any other loop is not
        # (its body is traced on its own instead)
        if not _short(lower, upper):
            raise _Loop("a loop")
        for i in range(lower, upper):
            state = body(torch.tensor(i, dtype=torch.int32, device=_device_of_state(state)), state)
        return state
    lo, hi = int(lower), int(upper)
    graphs = _CURRENT.get()
    if graphs is None:
        for i in range(lo, hi):
            state = body(i, state)
        return state
    step = graphs.bind(body)
    counts = torch.arange(lo, hi, dtype=torch.int32, device=_device_of_state(state))
    for i in range(hi - lo):
        state = step(counts[i], state)
    return state


def while_loop(cond: Callable[..., Any], body: Callable[..., Any], state: Any) -> Any:
    """``keras.ops.while_loop`` with ``cond`` and ``body`` replayed from traced graphs inside a
    `jit` call (the condition is read on the host once per step)."""
    if tracing():
        raise _Loop("a loop")
    graphs = _CURRENT.get()
    is_tuple = isinstance(state, (tuple, list))
    state = tuple(state) if is_tuple else (state,)
    if graphs is None:
        check, step = cond, body
    else:
        check, step = graphs.bind(cond), graphs.bind(body)
    while bool(check(*state)):
        state = step(*state)
        state = tuple(state) if isinstance(state, (tuple, list)) else (state,)
    return state if is_tuple else state[0]
