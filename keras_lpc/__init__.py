"""keras-lpc: Latent Point Collapse for Keras 3 (TensorFlow, JAX and PyTorch).

Public API (re-exports only): see the documentation for each name.

``import keras_lpc`` does not import Keras by itself, so the Keras backend
can still be chosen afterwards (the ``keras-lpc`` command parses its
``--backend`` flag first). The public names load on first use
(``keras_lpc.GammaAnnealing``, ``from keras_lpc import metrics``), and all
of them load as soon as Keras is imported, before or after keras-lpc, so
that ``keras.saving.load_model`` finds the registered keras-lpc classes
without any keras-lpc name having been touched.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the re-exports, for static tools (type checkers, mkdocstrings)
    from keras_lpc import datasets, metrics, optimizers, plotting, robustness, schedules, tuning
    from keras_lpc._latents import latents
    from keras_lpc.callbacks import (
        CollapseMetrics,
        GammaAnnealing,
        InformationMetrics,
        RobustnessMetrics,
    )
    from keras_lpc.layers import LatentPointCollapse, latent_penalty
    from keras_lpc.surgery import with_lpc

__version__ = "0.1.0"

# public name -> module that defines it (modules: the name itself)
_NAMES: dict[str, str] = {
    "CollapseMetrics": "keras_lpc.callbacks",
    "GammaAnnealing": "keras_lpc.callbacks",
    "InformationMetrics": "keras_lpc.callbacks",
    "RobustnessMetrics": "keras_lpc.callbacks",
    "LatentPointCollapse": "keras_lpc.layers",
    "latent_penalty": "keras_lpc.layers",
    "with_lpc": "keras_lpc.surgery",
    "latents": "keras_lpc._latents",
}
_MODULES = (
    "datasets",
    "metrics",
    "optimizers",
    "plotting",
    "robustness",
    "schedules",
    "tuning",
)

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
    "with_lpc",
]


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(f"keras_lpc.{name}")
    else:
        raise AttributeError(f"module 'keras_lpc' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _load_all(strict: bool = True) -> None:
    """Import every public name (registers the serializable classes with Keras).

    ``strict=False`` skips a name that fails to load (its error is raised
    again when the name is used).
    """
    for name in (*_NAMES, *_MODULES):
        try:
            __getattr__(name)
        except Exception:
            if strict:
                raise


class _LoadAfterKeras(importlib.abc.MetaPathFinder):
    """One-shot import hook: once ``keras`` has been imported, load keras-lpc's names.

    It finds Keras' own spec and wraps that loader's ``exec_module`` (the
    loader object and its type are Keras' own). A failure to load a
    keras-lpc name does not fail ``import keras``: it is raised again when
    the name is used.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_keras = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run_keras(module)
            _load_all(strict=False)

        spec.loader.exec_module = exec_module
        return spec


if "keras" in sys.modules:
    _load_all()
elif not any(isinstance(finder, _LoadAfterKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _LoadAfterKeras())
