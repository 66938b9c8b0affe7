"""Input gradients (``torch.autograd.grad``, cotangents batched by vmap) and eager runs on torch."""

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
    if not bool(cot.any()):  # all products are exactly zero: skip the backward pass
        return out.detach(), torch.zeros((count, *xt.shape), dtype=xt.dtype, device=xt.device)
    if count == 1:
        return out.detach(), torch.autograd.grad(out, xt, grad_outputs=cot[0])[0][None]
    try:  # one vmapped backward pass for all K cotangents (4x faster than K passes on an MLP)
        grads = torch.autograd.grad(
            out, xt, grad_outputs=cot, is_grads_batched=True, retain_graph=True
        )
        return out.detach(), grads[0]
    except RuntimeError:  # an op without a batching rule: K ordinary backward passes
        pass
    grads = [
        torch.autograd.grad(out, xt, grad_outputs=cot[k], retain_graph=k < count - 1)[0]
        for k in range(count)
    ]
    return out.detach(), torch.stack(grads)


def normal(like: Any, count: int, seed: Any, index: Any) -> Any:
    """Normal samples (count, *like.shape) from ``seed`` (2,) and ``index``, on ``like``'s device."""
    import torch

    first, second = (int(v) for v in seed.tolist())
    generator = torch.Generator(device=like.device)
    generator.manual_seed(((first & 0xFFFFFFFF) << 32 | (second & 0xFFFFFFFF)) + 7919 * int(index))
    return torch.randn(
        (count, *like.shape), generator=generator, dtype=like.dtype, device=like.device
    )


def jit(fn: Callable[..., Any], variables: list[Any]) -> Callable[..., Any]:
    """``fn`` run eagerly under ``torch.no_grad`` on tensors (variables read directly)."""
    import torch

    def call(*args: Any) -> Any:
        with torch.no_grad():
            return fn(*[keras.ops.convert_to_tensor(a) for a in args])

    return call
