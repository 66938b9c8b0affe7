"""keras-lpc: Latent Point Collapse for Keras 3 (TensorFlow, JAX and PyTorch).

Public API (re-exports only): see the documentation for each name.

``import keras_lpc`` imports Keras (as keras-hub does), so the backend is
chosen by ``KERAS_BACKEND`` before it; importing it registers keras-lpc's
serializable classes, so ``keras.saving.load_model`` finds them. The
``keras-lpc`` command parses ``--backend`` in a small entry module
(`keras_lpc_cli`) before it imports this package. Modules with optional
dependencies (`plotting`: matplotlib, `tuning`: keras-tuner) load on first
use.
"""

from __future__ import annotations

import importlib
from typing import Any

import keras  # noqa: F401  (the backend is fixed from here on)

from keras_lpc import (
    annealing,
    callbacks,
    datasets,
    metrics,
    optimizers,
    readout,
    robustness,
    schedules,
)
from keras_lpc.callbacks import (
    CollapseMetrics,
    GammaAnnealing,
    InformationMetrics,
    RobustnessMetrics,
)
from keras_lpc.layers import LatentPointCollapse, latent_penalty
from keras_lpc.readout import latents, latents_and_outputs
from keras_lpc.surgery import with_lpc

__version__ = "0.1.0"

_LAZY = ("plotting", "tuning")

__all__ = [
    "CollapseMetrics",
    "GammaAnnealing",
    "InformationMetrics",
    "LatentPointCollapse",
    "RobustnessMetrics",
    "__version__",
    "annealing",
    "callbacks",
    "datasets",
    "latent_penalty",
    "latents",
    "latents_and_outputs",
    "metrics",
    "optimizers",
    "readout",
    "plotting",
    "robustness",
    "schedules",
    "tuning",
    "with_lpc",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"keras_lpc.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'keras_lpc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
