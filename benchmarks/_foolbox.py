"""foolbox 3 as a yardstick for the benchmarks (never a dependency of keras_lpc).

foolbox is not installed with the project. Install it beside the project for a
benchmark run, without its dependencies (they would replace pinned packages)::

    .venv/bin/python -m pip install --target .foolbox --no-deps \\
        foolbox==3.3.4 eagerpy==0.30.0 GitPython gitdb smmap
    PYTHONPATH=.foolbox KERAS_BACKEND=jax .venv/bin/python benchmarks/robustness_ensemble.py

eagerpy 0.30 calls ``np.find_common_type``, which NumPy 2 removed; `load`
puts back an equivalent (``np.result_type`` of the array dtypes) before
importing foolbox. `attack` turns a foolbox minimisation attack into a callable
that `keras_lpc.robustness.minimal_perturbation` runs and verifies like its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def load() -> Any:
    """The foolbox module, or ImportError saying how to install it for benchmarks."""
    local = ROOT / ".foolbox"
    if local.is_dir() and str(local) not in sys.path:
        sys.path.append(str(local))
    if not hasattr(np, "find_common_type"):

        def find_common_type(array_types: list, scalar_types: list) -> np.dtype:
            return np.result_type(*array_types, *scalar_types)

        setattr(np, "find_common_type", find_common_type)  # noqa: B010
    try:
        import foolbox
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise ImportError(
            "foolbox 3 is a benchmark yardstick, not installed with keras-lpc: "
            "`pip install --target .foolbox --no-deps foolbox==3.3.4 eagerpy==0.30.0 "
            "GitPython gitdb smmap` (see benchmarks/_foolbox.py)"
        ) from err
    return foolbox


def available() -> str | None:
    """None when foolbox can be loaded, else the reason it cannot."""
    try:
        load()
    except ImportError as err:
        return str(err)
    return None


def wrap(fn: Any, bounds: tuple[float, float]) -> Any:
    """A foolbox model around ``fn`` (backend tensors -> logits) for the current backend."""
    import keras

    fb = load()
    name = keras.backend.backend()
    if name == "torch":
        import torch

        class Wrapped(torch.nn.Module):
            def forward(self, t: Any) -> Any:
                return fn(t)

        return fb.PyTorchModel(Wrapped().eval(), bounds=bounds, device="cpu")
    if name == "tensorflow":
        return fb.TensorFlowModel(fn, bounds=bounds)
    return fb.JAXModel(fn, bounds=bounds)


def patched_l2_fmn() -> Any:
    """foolbox's L2 FMN with its projection mended.

    foolbox 3.3.4 projects with ``min(1, norms / norms)`` (always 1, so the
    step is never brought back to the epsilon ball); the paper's projection
    is ``min(1, eps / ||x - x0||)``.
    """
    load()
    from foolbox.attacks.fast_minimum_norm import L2FMNAttack
    from foolbox.devutils import atleast_kd, flatten

    ep = sys.modules["eagerpy"]

    class PatchedL2FMN(L2FMNAttack):
        def project(self, x: Any, x0: Any, epsilon: Any) -> Any:
            norms = ep.maximum(flatten(x - x0).norms.l2(axis=-1), 1e-12)
            factor = atleast_kd(ep.minimum(1, epsilon / norms), x.ndim)
            return x0 + (x - x0) * factor

    return PatchedL2FMN


def attack(factory: Any, label: str, fn: Any, bounds: tuple[float, float]) -> Any:
    """A `minimal_perturbation` attack callable running ``factory(budget)`` from foolbox.

    The callable returns foolbox's raw adversarial minus ``x``; the ensemble then
    checks every one by a forward pass, as it does its own attacks.
    """
    import keras

    def run(scorer: Any, x: np.ndarray, labels: np.ndarray, *, norm: str, budget: int,
            clip: Any, rng: np.random.Generator) -> np.ndarray:  # fmt: skip
        fb = load()
        keras.utils.set_random_seed(int(rng.integers(2**31 - 1)))
        fmodel = wrap(fn, bounds)
        xt = keras.ops.convert_to_tensor(x.astype("float32"))
        dtype = "int64" if keras.backend.backend() == "torch" else "int32"
        yt = keras.ops.convert_to_tensor(labels.astype(dtype))
        raw, _, _ = factory(budget)(fmodel, xt, fb.criteria.Misclassification(yt), epsilons=None)
        return keras.ops.convert_to_numpy(raw).astype("float64") - x

    run.__name__ = label
    return run


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
