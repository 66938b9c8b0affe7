"""Certified lower bounds of the minimal adversarial perturbation, on any Keras model.

`certified_radius` (Lipschitz margin, IBP, CROWN), `certified_at` (one pass at
a fixed radius) and `robustness_bracket` (certified beside the verified attack
ensemble's ``certified <= true minimum <= found``). See docs/certified.md.
"""

from keras_lpc.robustness.certify.bracket import RobustnessBracket, robustness_bracket
from keras_lpc.robustness.certify.radius import (
    CertifiedRadiusResult,
    certified_at,
    certified_radius,
)

__all__ = [
    "CertifiedRadiusResult",
    "RobustnessBracket",
    "certified_at",
    "certified_radius",
    "robustness_bracket",
]
