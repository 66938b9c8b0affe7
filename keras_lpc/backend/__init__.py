"""Input gradients and compiled loops for each Keras backend.

This package is the only place in keras_lpc that imports tensorflow, jax or
torch, and each framework is imported lazily inside its own module. An
attack is written once, in ``keras.ops``, as a function of backend tensors;
this package supplies the two things ``keras.ops`` lacks:

``vjp(fn, x, cotangent_fn, aux) -> (scores, grads)``
    Traceable (usable inside `jit` and inside ``keras.ops.while_loop`` /
    ``fori_loop`` bodies). ``fn`` maps a batch ``x`` (N, ...) to scores
    (N, C) in ``keras.ops``; ``cotangent_fn(scores, aux)`` (``keras.ops``)
    builds cotangents (K, N, C) from the detached scores and ``aux`` (any
    tensor or tuple of tensors, e.g. labels or candidate classes, passed through
    untouched; ``K`` must be static, i.e. known
    from shapes other than the batch axis). Returns the scores and
    ``grads[k, n] = sum_c cot[k, n, c] * d scores[n, c] / d x[n]``
    (K, N, ...), both backend tensors: one forward pass and K products
    (JAX ``jax.vjp`` + ``vmap``; TensorFlow a persistent ``GradientTape``, ``tf.map_fn``
    over the cotangents; torch ``torch.func.vjp`` and K backward passes, one per
    cotangent). The scores of different samples must not depend on each other
    (inference mode). On torch, inside the traced DeepFool step (CPU, one thread,
    K = 9, ``benchmarks/deepfool.py``), K passes took the same time as one vmapped
    pass on the MLP (0.08 s for 1000 inputs) and 24 % less on the small
    channels-last CNN (1.46 s against 1.91 s): the vmapped graph copied K x N
    activations between memory layouts and ran ReLU's backward across mismatched
    layouts. Most of the rest is the backward convolutions and matrix products.

``jit(fn, variables=()) -> compiled``
    ``compiled(*arrays)`` converts NumPy arguments to backend tensors and
    runs ``fn`` compiled: ``jax.jit`` with the ``variables`` (a model's
    ``model.variables``) passed as arguments through a
    ``keras.StatelessScope``, so a compiled function always sees the
    current weights and is never rebuilt when they change;
    ``tf.function`` (without autograph, as Keras' own train and predict
    steps: ``fn`` has no Python control flow on tensors) with the batch axis
    (axis 0 of every array argument) left free in its input signature, one graph per dtypes and non-batch
    shapes (variables are read by reference; every batch size reuses it,
    other axes such as the candidate count ``K`` stay static);
    torch runs eagerly under ``torch.no_grad`` (``vjp`` re-enables
    gradients where it needs them; not ``inference_mode``, under which
    ``enable_grad`` records no graph), so there every ``keras.ops`` call
    costs its Python overhead (tens of microseconds) and eager loop bodies
    prefer Python operators and indexing, native on every backend. Outputs
    are backend tensors (convert with ``keras.ops.convert_to_numpy`` once,
    at the end). Pass array arguments, not Python numbers, so values never
    cause a retrace.

``normal(like, count, seed, index)``
    Standard normal samples (count, *like.shape) in ``like``'s dtype, a pure
    function of ``seed`` (a (2,) int32 tensor, passed as an argument so new
    values never retrace) and ``index`` (a loop counter): traceable, so a
    compiled loop draws its random directions on the device
    (``jax.random``; ``tf.random.stateless_normal``; a seeded
    ``torch.Generator``). The stream differs between backends.

``train_step_count(source, mirror, owner)``
    The optimizer step of the running train step inside a model's forward
    pass, counted once per step however many times ``owner`` (a shared
    layer) is called: the optimizer's ``iterations`` where the forward pass
    can read it (TensorFlow, torch, eager JAX), and on JAX's compiled train
    step, whose forward pass sees only the model's own variables, a
    ``mirror`` variable of ``owner`` advanced once per traced step.

``compiles()``
    False on torch, where `jit` runs eagerly: there a loop may gather its
    still-active rows on the device (dynamic shapes) instead of masking.

``cached(owner, key, build)``
    ``build()`` once per ``(owner, key)``, stored on ``owner`` (a model),
    so repeated calls of an attack on the same model reuse its compiled
    functions (``key`` must hold every static setting).

``bucket(n)`` / ``pad(a, size)``
    Batch sizes rounded up to a power of two (at least 8; with ``fine=True``
    also ``3 x 2^(k - 2)``, at most a third padding) and NumPy zero-padding
    along axis 0: a compiled attack sees a few shapes, and padded rows are
    masked out by the caller.

Usage, a PGD-style L-inf loop (see `keras_lpc.robustness.attacks`)::

    def attack(x, y, eps, step):          # backend tensors, keras.ops only
        def body(i, delta):
            _, g = backend.vjp(score_fn, x + delta, ce_cotangent, y)
            return ops.clip(delta + step * ops.sign(g[0]), -eps, eps)
        delta = ops.fori_loop(0, steps, body, ops.zeros_like(x))
        return ops.argmax(score_fn(x + delta), axis=1) == y

    run = backend.cached(model, ("pgd", steps),
                         lambda: backend.jit(attack, model.variables))
    size = backend.bucket(len(x))
    hits = ops.convert_to_numpy(run(backend.pad(x, size), backend.pad(y, size),
                                    np.float32(eps), np.float32(step)))[: len(x)]
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

# Keras' stateless scope (JAX's train step runs the forward pass in one) has
# no public getter; this is the only private Keras name keras_lpc uses, and
# tests/test_backend.py fails loudly if it moves.
from keras.src.backend.common.stateless_scope import get_stateless_scope


def _impl() -> Any:
    name = keras.backend.backend()
    if name == "tensorflow":
        from keras_lpc.backend import _tensorflow as impl
    elif name == "jax":
        from keras_lpc.backend import _jax as impl
    elif name == "torch":
        from keras_lpc.backend import _torch as impl
    else:
        raise ValueError(
            "Input gradients need the tensorflow, jax or torch Keras backend. "
            f"Received: backend={name!r}"
        )
    return impl


def vjp(
    fn: Callable[[Any], Any], x: Any, cotangent_fn: Callable[[Any, Any], Any], aux: Any
) -> tuple[Any, Any]:
    """Scores ``fn(x)`` (N, C) and K vector-Jacobian products (K, N, ...), traceable.

    ``grads[k, n] = sum_c cot[k, n, c] * d fn(x)[n, c] / d x[n]`` with
    ``cot = cotangent_fn(stop_gradient(fn(x)), aux)`` of shape (K, N, C).
    """
    return _impl().vjp(fn, x, cotangent_fn, aux)


def jit(fn: Callable[..., Any], variables: Sequence[Any] = ()) -> Callable[..., Any]:
    """``fn`` compiled for the current backend; reads ``variables``' current values per call."""
    compiled = _impl().jit(fn, list(variables))

    def call(*args: Any) -> Any:
        record = _GUARD.get()
        if record is None:
            return compiled(*args)
        record.calls += 1
        if keras.backend.backend() != "jax":
            return compiled(*args)
        import jax

        args = [jax.device_put(np.asarray(a)) for a in args]  # explicit: allowed
        with jax.transfer_guard("disallow"):
            return compiled(*args)

    return call


def fori_loop(lower: Any, upper: Any, body: Callable[[Any, Any], Any], state: Any) -> Any:
    """``keras.ops.fori_loop``; on torch inside `jit`, ``body`` replays one traced graph per
    step (``k`` an int32 tensor there, as under ``jax.jit``). ``body`` may close over
    tensors and the score function; it must not branch in Python on tensor values."""
    if keras.backend.backend() == "torch":
        return _impl().fori_loop(lower, upper, body, state)
    return ops.fori_loop(lower, upper, body, state)


def while_loop(cond: Callable[..., Any], body: Callable[..., Any], state: Any) -> Any:
    """``keras.ops.while_loop``; on torch inside `jit`, ``cond`` and ``body`` replay traced
    graphs (the condition read on the host once per step)."""
    if keras.backend.backend() == "torch":
        return _impl().while_loop(cond, body, state)
    return ops.while_loop(cond, body, state)


def bind(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` itself, or on torch inside `jit` a function replaying one traced graph of
    ``fn`` per argument signature (the tensors it closes over are read now): the step
    of a loop that `jit`'s function runs on the host."""
    if keras.backend.backend() == "torch":
        return _impl().bind(fn)
    return fn


def traceable(fn: Callable[[Any], Any], variables: Sequence[Any]) -> Callable[[Any], Any]:
    """``fn`` (a batch -> scores) itself, or on torch replayed from one traced graph per
    input signature with ``variables`` read as inputs (``fn.raw`` is ``fn``)."""
    if keras.backend.backend() == "torch":
        return _impl().traceable(fn, variables)
    return fn


def threads() -> Any:
    """A context manager: on torch at most `set_torch_threads`'s intra-op threads inside
    (one by default; restored after), elsewhere nothing. Every `jit` call runs in it."""
    if keras.backend.backend() == "torch":
        return _impl().threads()
    return contextlib.nullcontext()


def set_torch_threads(limit: int | None = 1) -> None:
    """The intra-op threads torch may use inside the attack loops (`threads`); ``None``
    leaves torch's own count.

    One by default: the loops run many small operations, and with several threads
    each one waits for the slowest, which collapses when another process holds a
    core (see docs/benchmarks.md, section torch-threads).
    """
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"`limit` must be an integer >= 1 or None. Received: limit={limit!r}")
    from keras_lpc.backend import _torch

    _torch.set_threads(limit)


def set_torch_compile(on: bool) -> None:
    """Send torch's traced graphs to ``torch.compile`` (inductor), off by default.

    It needs a C++ compiler (checked at the first graph: without one the plain graphs
    run and a debug log on ``keras_lpc.backend`` says why), compiles once per graph and
    input shape, and pays only on long runs (see docs/benchmarks.md).
    """
    from keras_lpc.backend import _trace

    _trace.set_compile(on)


class GuardRecord:
    """What `guard` saw: ``calls``, the compiled calls run inside it."""

    def __init__(self) -> None:
        self.calls = 0


_GUARD: contextvars.ContextVar[GuardRecord | None] = contextvars.ContextVar(
    "keras_lpc_guard", default=None
)


@contextlib.contextmanager
def guard() -> Iterator[GuardRecord]:
    """Count the `jit` calls inside, and on JAX run each under ``jax.transfer_guard("disallow")``.

    The arguments are moved to the device explicitly before each call and the
    outputs stay there, so an implicit transfer inside a compiled function (a host
    callback, a host value read inside the loop) raises. Each compiled call is one
    host round trip: a loop that runs as one call per batch makes none per step.
    """
    record = GuardRecord()
    token = _GUARD.set(record)
    try:
        yield record
    finally:
        _GUARD.reset(token)


def normal(like: Any, count: int, seed: Any, index: Any) -> Any:
    """Normal samples (count, *like.shape), a pure function of ``seed`` (2,) and ``index``."""
    return _impl().normal(like, count, seed, index)


# scope of a traced JAX train step -> {id(layer): that step's count}
_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def train_step_count(source: Any, mirror: Any, owner: Any, active: Any = True) -> Any:
    """The current optimizer step as a float32 tensor, once per train step whatever the calls.

    Args:
        source: the optimizer's ``iterations`` variable.
        mirror: a float32 non-trainable variable of ``owner`` (so part of the
            model's state on JAX); left holding the step after this one while
            ``active``, unchanged otherwise.
        owner: the layer asking (a shared layer asks once per call).
        active: a boolean (tensor): whether the count is in use.
    """
    scope = get_stateless_scope()
    if scope is not None and scope.get_current_value(source) is None:
        # JAX's train step: the forward pass holds the model's variables, not the
        # optimizer's. The mirror advances once per traced step (one scope per step).
        seen = _STEPS.setdefault(scope, {})
        if id(owner) not in seen:
            step = ops.convert_to_tensor(mirror)
            mirror.assign(ops.where(active, step + 1.0, step))
            seen[id(owner)] = step
        return seen[id(owner)]
    step = ops.cast(ops.convert_to_tensor(source), "float32")
    mirror.assign(ops.where(active, step + 1.0, ops.convert_to_tensor(mirror)))
    return step


def compiles() -> bool:
    """Whether `jit` compiles (JAX, TensorFlow: static shapes inside a loop) or runs eagerly
    (torch: a loop may gather its active rows, shapes may change between steps)."""
    return keras.backend.backend() != "torch"


_CACHE = "_keras_lpc_compiled"


def cached(owner: Any, key: Hashable, build: Callable[[], Any]) -> Any:
    """``build()`` computed once per ``(owner, key, backend)`` and stored on ``owner``."""
    store = owner.__dict__.get(_CACHE)
    if store is None:
        store = {}
        object.__setattr__(owner, _CACHE, store)
    full = (keras.backend.backend(), key)
    if full not in store:
        store[full] = build()
    return store[full]


def bucket(n: int, minimum: int = 8, fine: bool = False) -> int:
    """The smallest power of two ``>= n`` (and ``>= minimum``): the padded batch size.

    With ``fine``, sizes ``3 x 2^(k - 2)`` (12, 24, 48, ...) count too, so at most a
    third of a batch of 12 or more is padding, for twice the shapes:
    ``bucket(136) == 256``, ``bucket(136, fine=True) == 192``.
    """
    size = max(minimum, 1 << (max(int(n), 1) - 1).bit_length())
    if fine and size >= 16 and int(n) <= size * 3 // 4:
        return size * 3 // 4
    return size


def pad(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` zero-padded along axis 0 to ``size`` rows."""
    a = np.asarray(a)
    extra = size - a.shape[0]
    if extra <= 0:
        return a
    return np.concatenate([a, np.zeros((extra, *a.shape[1:]), dtype=a.dtype)])
