"""What the certify package borrows from the rest of keras_lpc, imported in this one place.

The robustness package is being reorganised around a shared core; after that
merge each name below is repointed here and nowhere else.
"""

from __future__ import annotations

from keras_lpc import backend
from keras_lpc._models import graph_nodes
from keras_lpc.robustness._scores import (
    _output_operation,
    _softmax_kind,
    check_clip,
    check_inputs,
    check_labels,
)


def attack_ensemble():
    """``(minimal_perturbation, MinimalPerturbationResult)``, imported late (no import cycle)."""
    from keras_lpc.robustness.ensemble import MinimalPerturbationResult, minimal_perturbation

    return minimal_perturbation, MinimalPerturbationResult


__all__ = [
    "_output_operation",
    "_softmax_kind",
    "attack_ensemble",
    "backend",
    "check_clip",
    "check_inputs",
    "check_labels",
    "graph_nodes",
]
