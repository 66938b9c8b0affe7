"""Gamma schedules (public): re-exported from `keras_lpc.annealing.schedules`.

A schedule maps a step (or epoch) count to gamma; its formula is written
once and runs inside the compiled train step or as a Python float. The
default run's policy is here too: `default_schedule` (the ramp
`GammaAnnealing()` uses) and `gamma_budget` (the largest gamma a run can
follow).
"""

from keras_lpc.annealing.base import GammaSchedule
from keras_lpc.annealing.budget import (
    BUDGET_REFERENCE,
    DEFAULT_MAXIMUM,
    default_schedule,
    gamma_budget,
)
from keras_lpc.annealing.schedules import (
    Constant,
    Cosine,
    Exponential,
    Geometric,
    Join,
    Linear,
    Polynomial,
    TwoPhaseExponential,
    get,
    in_graph,
    ops_value,
    value,
)

__all__ = [
    "BUDGET_REFERENCE",
    "DEFAULT_MAXIMUM",
    "Constant",
    "Cosine",
    "Exponential",
    "GammaSchedule",
    "Geometric",
    "Join",
    "Linear",
    "Polynomial",
    "TwoPhaseExponential",
    "default_schedule",
    "gamma_budget",
    "get",
    "in_graph",
    "ops_value",
    "value",
]
