"""The run state `GammaAnnealing` saves with each `LatentPointCollapse` layer to resume a run."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

__all__ = ["ANNEALING_STATE_KEY", "AnnealingState", "EpochState"]

# Key under which `LatentPointCollapse.save_own_variables` stores the resume
# state: one float entry per field, ``annealing_state.<slot>.<field>``; files
# written before the named format hold one 9-float array under the bare key.
ANNEALING_STATE_KEY = "annealing_state"


@dataclasses.dataclass(frozen=True)
class EpochState:
    """`GammaAnnealing`'s state at the start of one epoch.

    Attributes:
        epoch: the epoch (0-based) this state starts.
        count: effective count (steps or epochs, less those held) at its start.
        best: best value of the hold monitor before it (``-inf``/``inf``: none yet).
        rate: advance of the count per step (per epoch with ``unit="epoch"``)
            during the epoch: 1 at full speed, 0 held, in between slowed.
        policy: further named numbers kept by the per-epoch rule.
    """

    epoch: int
    count: float
    best: float
    rate: float = 1.0
    policy: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class AnnealingState:
    """What `GammaAnnealing` saves with a `LatentPointCollapse` layer to resume a run.

    ``current`` is the state the epoch in progress (or the last one trained)
    started from and ``next`` the one the epoch after it starts from, once
    decided (``None`` before): a checkpoint written at the end of an epoch by
    a callback listed before or after `GammaAnnealing` resumes exactly either
    way. Saved field by field under ``annealing_state.<current|next>.<field>``.

    Attributes:
        current: the `EpochState` of the epoch in progress or last trained.
        next: the `EpochState` of the following epoch, or ``None``.
        counts_per_epoch: counts in one epoch (steps, 1 with ``unit="epoch"``,
            0 when the run's length was unknown).
        scale: schedule counts per effective count (the pacing), so that a
            later ``fit`` can continue the same gamma.

    Example:

    >>> s = AnnealingState(EpochState(2, 8.0, 0.9), EpochState(3, 12.0, 0.9, 0.0), 4, 2.5)
    >>> AnnealingState.from_entries(s.to_entries()) == s
    True
    """

    current: EpochState
    next: EpochState | None
    counts_per_epoch: int
    scale: float = 1.0

    def latest(self) -> EpochState:
        """``next`` when decided, else ``current``."""
        return self.next if self.next is not None else self.current

    def to_entries(self) -> dict[str, np.ndarray]:
        """The state as named float64 scalars (the keys a weights file stores)."""
        out = {
            f"{ANNEALING_STATE_KEY}.counts_per_epoch": self.counts_per_epoch,
            f"{ANNEALING_STATE_KEY}.scale": self.scale,
        }
        for slot in ("current", "next"):
            state = getattr(self, slot)
            if state is None:
                continue
            prefix = f"{ANNEALING_STATE_KEY}.{slot}."
            for field in ("epoch", "count", "best", "rate"):
                out[prefix + field] = getattr(state, field)
            for name, value in state.policy.items():
                out[f"{prefix}policy.{name}"] = value
        return {k: np.asarray(v, dtype="float64") for k, v in out.items()}

    @classmethod
    def from_entries(cls, entries: dict[str, Any]) -> AnnealingState | None:
        """Rebuild from `to_entries`' keys, or from the earlier 9-float array.

        The array (files saved before the named format) holds, in order,
        epoch, count, best and hold flag of the current epoch, the same four
        of the next one (NaN: not decided), and the counts per epoch.
        """
        values = {k: np.asarray(v, dtype="float64") for k, v in entries.items()}
        if ANNEALING_STATE_KEY in values:
            array = values[ANNEALING_STATE_KEY].reshape(-1)
            if array.shape != (9,):
                return None
            slots = [array[0:4], array[4:8]]
            states = [
                None
                if math.isnan(slot[0])
                else EpochState(int(slot[0]), float(slot[1]), float(slot[2]), 1.0 - float(slot[3]))
                for slot in slots
            ]
            if states[0] is None:
                return None
            return cls(states[0], states[1], int(array[8]))

        def slot(name: str) -> EpochState | None:
            prefix = f"{ANNEALING_STATE_KEY}.{name}."
            if prefix + "epoch" not in values:
                return None
            policy = {
                key[len(prefix + "policy.") :]: float(v)
                for key, v in values.items()
                if key.startswith(prefix + "policy.")
            }
            return EpochState(
                int(values[prefix + "epoch"]),
                float(values[prefix + "count"]),
                float(values[prefix + "best"]),
                float(values[prefix + "rate"]),
                policy,
            )

        current = slot("current")
        if current is None:
            return None
        return cls(
            current,
            slot("next"),
            int(values[f"{ANNEALING_STATE_KEY}.counts_per_epoch"]),
            float(values.get(f"{ANNEALING_STATE_KEY}.scale", 1.0)),
        )
