"""Input gradients on the JAX backend (``jax.vjp`` + ``vmap`` under ``jit``).

Batches are padded to a power of two so that a shrinking set of active
inputs (DeepFool) compiles a handful of shapes, not one per batch size.
The jitted functions are built per `Differentiator`, i.e. per call of a
public function, so they always see the model's current weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def _bucket(n: int) -> int:
    return max(8, 1 << (max(n, 1) - 1).bit_length())


def _pad(a: np.ndarray, size: int, axis: int = 0) -> np.ndarray:
    extra = size - a.shape[axis]
    if extra == 0:
        return a
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, extra)
    return np.pad(a, widths)


class Differentiator:
    """Forward passes and batched vector-Jacobian products of ``fn`` on JAX."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        import jax

        self._forward = jax.jit(fn)
        self._vjps: dict[Callable, Callable] = {}

    def _vjp_fn(self, cotangent_fn: Callable) -> Callable:
        import jax

        if cotangent_fn not in self._vjps:
            fn = self._forward

            def run(x: Any, aux: Any) -> tuple[Any, Any]:
                out, pull = jax.vjp(fn, x)
                cot = cotangent_fn(jax.lax.stop_gradient(out), aux)
                return out, jax.vmap(lambda c: pull(c)[0])(cot)

            self._vjps[cotangent_fn] = jax.jit(run)
        return self._vjps[cotangent_fn]

    def forward(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        return np.asarray(self._forward(_pad(x, _bucket(n))))[:n]

    def vjp(
        self, x: np.ndarray, cotangent_fn: Callable[[Any, Any], Any], aux: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(x)
        size = _bucket(n)
        out, grads = self._vjp_fn(cotangent_fn)(_pad(x, size), _pad(aux, size))
        return np.asarray(out)[:n], np.asarray(grads)[:, :n]
