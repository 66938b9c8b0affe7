"""Input gradients (``jax.vjp`` + ``vmap``) and ``jax.jit`` with the weights as arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras


def vjp(
    fn: Callable[[Any], Any], x: Any, cotangent_fn: Callable[[Any, Any], Any], aux: Any
) -> tuple[Any, Any]:
    """Scores and K batched vector-Jacobian products (see `keras_lpc.backend.vjp`)."""
    import jax

    out, pull = jax.vjp(fn, x)
    cot = cotangent_fn(jax.lax.stop_gradient(out), aux)
    return out, jax.vmap(lambda c: pull(c)[0])(cot)


def normal(like: Any, count: int, seed: Any, index: Any) -> Any:
    """Normal samples (count, *like.shape) from ``seed`` (2,) and ``index``, traceable."""
    import jax

    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed[0]), seed[1]), index)
    return jax.random.normal(key, (count, *like.shape), like.dtype)


def jit(fn: Callable[..., Any], variables: list[Any]) -> Callable[..., Any]:
    """``fn`` under ``jax.jit``, the variables' values passed in through a StatelessScope."""
    import jax

    def pure(values: list[Any], *args: Any) -> Any:
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    compiled = jax.jit(pure)

    def call(*args: Any) -> Any:
        return compiled([v.value for v in variables], *args)

    return call
