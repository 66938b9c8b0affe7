"""Input gradients on the PyTorch backend (autograd, one graph, K backward passes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np


def _numpy(t: Any) -> np.ndarray:
    """A torch tensor as NumPy; float16/bfloat16 (mixed precision) become float32."""
    import torch

    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t.detach().cpu().numpy()


class Differentiator:
    """Forward passes and batched vector-Jacobian products of ``fn`` on torch."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def forward(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.fn(keras.ops.convert_to_tensor(x, dtype=x.dtype.name))
        return _numpy(out)

    def vjp(
        self, x: np.ndarray, cotangent_fn: Callable[[Any, Any], Any], aux: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        xt = keras.ops.convert_to_tensor(x, dtype=x.dtype.name).detach().requires_grad_(True)
        with torch.enable_grad():
            out = self.fn(xt)
        cot = cotangent_fn(out.detach(), keras.ops.convert_to_tensor(aux))
        count = int(cot.shape[0])
        grads = [
            torch.autograd.grad(out, xt, grad_outputs=cot[k], retain_graph=k < count - 1)[0]
            for k in range(count)
        ]
        return _numpy(out), _numpy(torch.stack(grads))
