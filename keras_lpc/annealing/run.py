"""`AnnealingRun`: the per-epoch bookkeeping of one `fit`, in pure Python.

The train step computes gamma at every optimizer step ``s`` of an epoch
that started at step ``s0`` (`keras_lpc.LatentPointCollapse`)::

    count(s) = count0 + rate * (s - s0)
    gamma(s) = schedule(scale * count(s))

`AnnealingRun` decides, once per epoch, the epoch's ``count0`` and ``rate``
from the policies (`keras_lpc.annealing.Hold`, `TrainingPace`) and keeps the
`AnnealingState` that resumes the run. `keras_lpc.GammaAnnealing` only wires
it to ``fit``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from keras_lpc.annealing.policies import Policy
from keras_lpc.annealing.state import AnnealingState, EpochState

__all__ = ["AnnealingRun"]


class AnnealingRun:
    """Where the count of each epoch starts and how fast it advances, for one ``fit``.

    Args:
        policies: the per-epoch policies (their most cautious decision wins).
        counts_per_epoch: counts in one epoch (the steps per epoch, 1 with
            ``unit="epoch"``, 0 when the run's length is unknown).
        scale: schedule counts per effective count (1: the schedule as
            written; larger: stretched to the run).

    Example: an epoch of 4 steps at full rate, then a policy holds.

    >>> from keras_lpc.annealing import Hold
    >>> run = AnnealingRun([Hold(baseline=None)], counts_per_epoch=4)
    >>> run.start(0, None)
    'new'
    >>> run.begin_epoch(0).count, run.end_epoch({"accuracy": 0.9}, units=4).count
    (0.0, 4.0)
    >>> run.begin_epoch(1).rate, run.end_epoch({"accuracy": 0.1}, units=4).rate
    (1.0, 0.0)
    """

    def __init__(
        self, policies: Sequence[Policy], counts_per_epoch: int, scale: float = 1.0
    ) -> None:
        self.policies = list(policies)
        self.counts_per_epoch = int(counts_per_epoch)
        self.scale = float(scale)
        self.count = 0.0  # effective count at the start of the current epoch
        self.rate = 1.0  # its advance per unit during the current epoch
        self.decided = False  # whether the last epoch's policies returned a rate
        self.current: EpochState | None = None
        self.next: EpochState | None = None

    # ---------------------------------------------------------------- state
    def _entries(self) -> tuple[float, dict[str, float]]:
        entries: dict[str, float] = {}
        for policy in self.policies:
            entries.update(policy.state_entries())
        best = entries.pop("hold_best", -math.inf)
        return best, entries

    def _epoch_state(self, epoch: int, count: float, rate: float) -> EpochState:
        best, entries = self._entries()
        return EpochState(epoch, float(count), float(best), float(rate), entries)

    def _load(self, state: EpochState) -> None:
        self.count, self.rate = state.count, state.rate
        entries = {**state.policy, "hold_best": state.best}
        for policy in self.policies:
            policy.load_entries(entries)

    def state(self) -> AnnealingState:
        """The resume state to save with the layers."""
        return AnnealingState(self.current, self.next, self.counts_per_epoch, self.scale)

    # ---------------------------------------------------------------- epochs
    def start(self, epoch: int, saved: AnnealingState | None) -> str:
        """Set the first epoch's count: ``"resumed"``, ``"continued"`` or ``"new"``.

        ``epoch > 0`` (``initial_epoch``) resumes from the saved state of that
        epoch when the layer holds one with the same counts per epoch, else
        at ``epoch * counts_per_epoch`` (with a warning if another run's state
        was there). ``epoch == 0`` on a layer annealed before continues from
        its latest count, mapped onto this run's scale.
        """
        if epoch > 0:
            slots = [saved.current, saved.next] if saved is not None else []
            if saved is not None and saved.next is None and not self.policies:
                # saved before the epoch's end was decided (a checkpoint callback of
                # another library listed first): without policies the next epoch
                # follows from the current one
                cur = saved.current
                ahead = cur.count + cur.rate * saved.counts_per_epoch
                slots.append(EpochState(cur.epoch + 1, ahead, cur.best, cur.rate, cur.policy))
            for slot in slots:
                if (
                    slot is not None
                    and slot.epoch == epoch
                    and saved.counts_per_epoch == self.counts_per_epoch
                ):
                    self._load(slot)
                    return "resumed"
            if saved is not None:
                warnings.warn(
                    f"GammaAnnealing: the model's saved annealing state does not match epoch "
                    f"{epoch} with {self.counts_per_epoch} counts per epoch (state: {saved}); "
                    "resuming at count initial_epoch * steps without holds. List "
                    "GammaAnnealing before checkpointing callbacks to save the state of "
                    "every epoch.",
                    stacklevel=4,
                )
            self.count = float(epoch * self.counts_per_epoch)
            return "resumed"
        if saved is not None:
            latest = saved.latest()
            self._load(latest)
            self.count = latest.count * saved.scale / self.scale
            return "continued"
        return "new"

    def begin_epoch(self, epoch: int) -> EpochState:
        """The state the epoch starts from (kept as ``current``; ``next`` forgotten)."""
        self.current = self._epoch_state(epoch, self.count, self.rate)
        self.next = None
        return self.current

    def end_epoch(self, logs: Mapping[str, Any], units: float) -> EpochState:
        """Decide the next epoch from this one's training logs; ``units`` steps (or 1 epoch) ran.

        The count advanced by ``rate * units``; each policy sees that end
        count and returns a rate and a start count; the smallest of each wins
        (no rate from any policy: the rate stays).
        """
        end = self.count + self.rate * units
        rates, counts = [], [end]
        for policy in self.policies:
            decision = policy.decide(logs, end)
            counts.append(decision.count)
            if decision.rate is not None:
                rate = float(decision.rate)
                if not 0.0 <= rate <= 1.0:
                    raise ValueError(
                        f"{type(policy).__name__}.decide must return a rate in [0, 1] or None. "
                        f"Received: {rate!r}"
                    )
                rates.append(rate)
        self.decided = bool(rates)
        self.count = min(counts)
        self.rate = min(rates) if rates else self.rate
        epoch = self.current.epoch if self.current is not None else 0
        self.next = self._epoch_state(epoch + 1, self.count, self.rate)
        return self.next
