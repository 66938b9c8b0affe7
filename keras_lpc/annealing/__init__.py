"""Gamma over time, without callbacks: schedules, the budget, per-epoch policies, run state.

* `keras_lpc.annealing.schedules` (public as `keras_lpc.schedules`): pure
  functions of a step count, each formula written once in the NumPy API that
  `keras.ops` mirrors, evaluated in the compiled train step or as a float.
* `default_schedule`, `gamma_budget`: the default run's ramp and the largest
  gamma a run can follow.
* `Hold`, `TrainingPace` (`PaceState`): per-epoch policies deciding how fast
  the count advances from the training logs.
* `AnnealingRun`, `EpochState`, `AnnealingState`: the per-epoch bookkeeping
  of one ``fit`` and what is saved with the layer to resume it.
* `LayerAnnealing`: the read-only view of a layer's annealing.

`keras_lpc.GammaAnnealing` wires these to ``fit``.
"""

from keras_lpc.annealing import schedules
from keras_lpc.annealing.budget import (
    BUDGET_REFERENCE,
    DEFAULT_MAXIMUM,
    default_schedule,
    gamma_budget,
)
from keras_lpc.annealing.drive import LayerAnnealing
from keras_lpc.annealing.pace import PaceState, TrainingPace
from keras_lpc.annealing.policies import Decision, Hold, Policy
from keras_lpc.annealing.run import AnnealingRun
from keras_lpc.annealing.state import AnnealingState, EpochState

__all__ = [
    "BUDGET_REFERENCE",
    "DEFAULT_MAXIMUM",
    "AnnealingRun",
    "AnnealingState",
    "Decision",
    "EpochState",
    "Hold",
    "LayerAnnealing",
    "PaceState",
    "Policy",
    "TrainingPace",
    "default_schedule",
    "gamma_budget",
    "schedules",
]
