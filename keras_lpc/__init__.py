"""keras-lpc: Latent Point Collapse for Keras 3 (TensorFlow, JAX and PyTorch).

Public API (re-exports only): see the documentation for each name.
"""

from keras_lpc import datasets, metrics, optimizers, plotting, robustness, schedules, tuning
from keras_lpc._latents import latents
from keras_lpc.callbacks import (
    CollapseMetrics,
    GammaAnnealing,
    InformationMetrics,
    RobustnessMetrics,
)
from keras_lpc.layers import LatentPointCollapse, latent_penalty

__version__ = "0.1.0"

__all__ = [
    "CollapseMetrics",
    "InformationMetrics",
    "RobustnessMetrics",
    "GammaAnnealing",
    "LatentPointCollapse",
    "__version__",
    "datasets",
    "latent_penalty",
    "latents",
    "metrics",
    "optimizers",
    "plotting",
    "robustness",
    "schedules",
    "tuning",
]
