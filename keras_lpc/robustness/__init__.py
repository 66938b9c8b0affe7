"""Robustness of any Keras model: DeepFool, Lipschitz proxy, FGSM and PGD.

All functions work on the model's pre-softmax class scores: a final
``Dense(..., activation="softmax")``, ``Softmax`` or ``Activation("softmax")``
output layer is skipped automatically, and a model whose outputs still look
like probabilities is refused with an error saying how to fix it. Input
gradients come from `keras_lpc.backend` (TensorFlow, JAX or PyTorch).
"""

from keras_lpc.robustness.apgd import apgd_accuracy
from keras_lpc.robustness.attacks import fgsm_accuracy, pgd_accuracy
from keras_lpc.robustness.deepfool import DeepFoolResult, deepfool
from keras_lpc.robustness.ensemble import (
    ATTACKS,
    MinimalPerturbationResult,
    minimal_perturbation,
)
from keras_lpc.robustness.lipschitz import LipschitzResult, lipschitz
from keras_lpc.robustness.precision import cast_model

__all__ = [
    "ATTACKS",
    "DeepFoolResult",
    "LipschitzResult",
    "MinimalPerturbationResult",
    "apgd_accuracy",
    "cast_model",
    "deepfool",
    "fgsm_accuracy",
    "lipschitz",
    "minimal_perturbation",
    "pgd_accuracy",
]
