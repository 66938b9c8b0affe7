"""Input gradients (``torch.autograd.grad``, batched cotangents) and eager runs on torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras


def vjp(
    fn: Callable[[Any], Any], x: Any, cotangent_fn: Callable[[Any, Any], Any], aux: Any
) -> tuple[Any, Any]:
    """Scores and K vector-Jacobian products (see `keras_lpc.backend.vjp`)."""
    import torch

    xt = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = fn(xt)
    cot = cotangent_fn(out.detach(), aux)
    count = int(cot.shape[0])
    grads = [
        torch.autograd.grad(out, xt, grad_outputs=cot[k], retain_graph=k < count - 1)[0]
        for k in range(count)
    ]
    return out.detach(), torch.stack(grads)


def jit(fn: Callable[..., Any], variables: list[Any]) -> Callable[..., Any]:
    """``fn`` run eagerly under ``torch.no_grad`` on tensors (variables read directly)."""
    import torch

    def call(*args: Any) -> Any:
        with torch.no_grad():
            return fn(*[keras.ops.convert_to_tensor(a) for a in args])

    return call
