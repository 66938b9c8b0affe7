"""Robustness of any Keras model: DeepFool, Lipschitz proxy, FGSM and PGD.

All functions work on the model's pre-softmax class scores: a final softmax
found in the model's graph (``Dense(..., activation="softmax")``, ``Softmax``,
``Activation("softmax")`` or ``keras.ops.softmax``) is skipped automatically;
a model whose outputs look like probabilities without a softmax in its graph
is measured as it is, with a warning (say ``outputs="logits"`` or
``outputs="probabilities"`` to state what it returns). The attacks run on
the device, compiled, through `keras_lpc.backend` (TensorFlow, JAX or
PyTorch).
"""

from keras_lpc.robustness.apgd import apgd_accuracy
from keras_lpc.robustness.attacks import fgsm_accuracy, pgd_accuracy
from keras_lpc.robustness.certify import (
    CertifiedRadiusResult,
    RobustnessBracket,
    certified_at,
    certified_radius,
    robustness_bracket,
)
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
    "CertifiedRadiusResult",
    "DeepFoolResult",
    "LipschitzResult",
    "MinimalPerturbationResult",
    "RobustnessBracket",
    "apgd_accuracy",
    "cast_model",
    "certified_at",
    "certified_radius",
    "deepfool",
    "fgsm_accuracy",
    "lipschitz",
    "minimal_perturbation",
    "pgd_accuracy",
    "robustness_bracket",
]
