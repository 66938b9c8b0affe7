"""Robustness of any Keras model: DeepFool, Lipschitz proxy, FGSM, PGD, APGD, the verified
attack ensemble, certified lower bounds (CROWN, IBP) beside it.

All functions work on the model's pre-softmax class scores: a final softmax
found in the model's graph (``Dense(..., activation="softmax")``, ``Softmax``,
``Activation("softmax")`` or ``keras.ops.softmax``) is skipped automatically;
a model whose outputs look like probabilities without a softmax in its graph
is measured as it is, with a warning (say ``outputs="logits"`` or
``outputs="probabilities"`` to state what it returns). Every model batch runs
through a `Scorer`, compiled, on the device, through `keras_lpc.backend`
(TensorFlow, JAX or PyTorch). The attacks of `minimal_perturbation` share one
signature, ``attack(scorer, x, labels, *, norm, budget, clip, rng)``, and one
table (`register_attack`, `ATTACKS`).
"""

from keras_lpc.robustness._core import Scorer
from keras_lpc.robustness._registry import ATTACKS, register_attack, unregister_attack
from keras_lpc.robustness.apgd import apgd_accuracy
from keras_lpc.robustness.attacks import accuracy_curve, fgsm_accuracy, pgd_accuracy
from keras_lpc.robustness.certify import (
    CertifiedRadiusResult,
    RobustnessBracket,
    certified_at,
    certified_radius,
    robustness_bracket,
)
from keras_lpc.robustness.deepfool import DeepFoolResult, deepfool
from keras_lpc.robustness.ensemble import MinimalPerturbationResult, minimal_perturbation
from keras_lpc.robustness.lipschitz import LipschitzResult, lipschitz
from keras_lpc.robustness.precision import cast_model

__all__ = [
    "ATTACKS",
    "CertifiedRadiusResult",
    "DeepFoolResult",
    "LipschitzResult",
    "MinimalPerturbationResult",
    "RobustnessBracket",
    "Scorer",
    "accuracy_curve",
    "apgd_accuracy",
    "cast_model",
    "certified_at",
    "certified_radius",
    "deepfool",
    "fgsm_accuracy",
    "lipschitz",
    "minimal_perturbation",
    "pgd_accuracy",
    "register_attack",
    "robustness_bracket",
    "unregister_attack",
]
