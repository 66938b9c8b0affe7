"""keras-lpc: Latent Point Collapse for Keras 3 (TensorFlow, JAX and PyTorch).

Public API (re-exports only): see the documentation for each name.
"""

from keras_lpc import optimizers, schedules
from keras_lpc import robustness
from keras_lpc import datasets, plotting
from keras_lpc.callbacks import CollapseMetrics
from keras_lpc.callbacks import GammaAnnealing, InformationMetrics
from keras_lpc.callbacks import RobustnessMetrics
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
    "optimizers",
    "plotting",
    "robustness",
    "schedules",
]
