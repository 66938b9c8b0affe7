"""Planning one ``fit``'s annealing from the callback's arguments and the run's length (pure).

`GammaAnnealing` turns its arguments into policies and a ramp fraction once
(`policies`, `ramp_fraction`), and at the start of every ``fit`` into a
`RunPlan` (`plan`): the schedule (the default recipe's maximum lowered to
the run's budget), the scale that stretches it to the run, and the counts
per epoch.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from keras_lpc._validation import check_float
from keras_lpc.annealing.budget import DEFAULT_MAXIMUM, default_schedule, gamma_budget
from keras_lpc.annealing.pace import TrainingPace
from keras_lpc.annealing.policies import Hold, Policy

__all__ = ["CLOCK_RAMP_FRACTION", "PACED_RAMP_FRACTION", "RunPlan", "plan", "policies"]

PACED_RAMP_FRACTION = 0.7  # the default ramp's end when the training paces it
CLOCK_RAMP_FRACTION = 0.95  # ... and when it follows the clock
_POLICIES = {"Hold": Hold, "TrainingPace": TrainingPace}


def span_of(schedule: Any) -> float | None:
    """The schedule's finite, positive ``span`` (the count it settles at), else ``None``.

    Example:

    >>> from keras_lpc.schedules import Constant, Linear
    >>> span_of(Linear(0.0, 1.0, steps=10)), span_of(Constant(1.0)), span_of(abs)
    (10.0, None, None)
    """
    span = getattr(schedule, "span", None)
    if isinstance(span, bool) or not isinstance(span, (int, float)):
        return None
    return float(span) if 0 < span < math.inf else None


def policies(policy: Any, default_recipe: bool) -> list[Policy]:
    """The policy objects for `GammaAnnealing`'s ``policy`` argument.

    ``"auto"`` is ``[Hold(), TrainingPace()]`` for the default recipe and none
    for an explicit schedule; ``None`` none; a policy, a list of them, or
    their ``{"class_name", "config"}`` dicts (`GammaAnnealing.get_config`).

    Example:

    >>> policies("auto", True), policies("auto", False)
    ([Hold(monitor='accuracy', fraction=0.8, mode='auto', min_delta=0.0, baseline='auto'), \
TrainingPace(fast=0.05, floor=0.05, lost_min=0.01, lost_rel=0.2, retreat=0.7, backoff=0.5, \
monitor='accuracy')], [])
    """
    if isinstance(policy, str) and policy == "auto":
        return [Hold(), TrainingPace()] if default_recipe else []
    if policy is None:
        return []
    out = []
    for item in list(policy) if isinstance(policy, (list, tuple)) else [policy]:
        if isinstance(item, dict) and item.get("class_name") in _POLICIES:
            item = _POLICIES[item["class_name"]].from_config(item["config"])
        if not isinstance(item, Policy):
            raise TypeError(
                "`policy` must be 'auto', None, a keras_lpc.annealing.Policy (Hold, TrainingPace) "
                f"or a list of them. Received: policy={policy!r}"
            )
        out.append(item)
    return out


def ramp_fraction(value: Any, default_recipe: bool, chosen: list[Policy]) -> float | None:
    """`GammaAnnealing`'s ``ramp_fraction``: a number in (0, 1], or ``None`` (as written).

    ``"auto"`` is 0.7 for the default recipe with `TrainingPace`, 0.95 for it
    without, ``None`` for an explicit schedule.

    Example:

    >>> ramp_fraction("auto", True, [TrainingPace()]), ramp_fraction("auto", False, [])
    (0.7, None)
    """
    if isinstance(value, str) and value == "auto":
        if not default_recipe:
            return None
        paced = any(isinstance(p, TrainingPace) for p in chosen)
        return PACED_RAMP_FRACTION if paced else CLOCK_RAMP_FRACTION
    if value is None:
        return None
    if isinstance(value, str):
        raise ValueError(
            f"`ramp_fraction` must be 'auto', None or a number in (0, 1]. Received: ramp_fraction={value!r}"
        )
    value = check_float("ramp_fraction", value, strictly_positive=True)
    if value > 1:
        raise ValueError(f"`ramp_fraction` must be in (0, 1]. Received: ramp_fraction={value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """One ``fit``'s annealing plan.

    Attributes:
        schedule: the schedule to follow (the default recipe's, at its maximum).
        scale: schedule counts per effective count (1: as written).
        counts_per_epoch: steps per epoch (1 with ``unit="epoch"``, 0 unknown).
        budget: `gamma_budget` of the run, or ``None`` (length or learning rate unknown).
        unknown_length: the run needed its length (a stretch or the budget) and has none.
    """

    schedule: Any
    scale: float
    counts_per_epoch: int
    budget: float | None
    unknown_length: bool


def plan(
    schedule: Any,
    *,
    auto_maximum: bool,
    ramp_fraction: float | None,
    unit: str,
    steps: int | None,
    epochs: int | None,
    learning_rate: float | None,
    multiplier: float = 1.0,
) -> RunPlan:
    """Plan a run of ``epochs`` epochs of ``steps`` steps.

    ```
    budget  = gamma_budget(epochs * steps, learning_rate, multiplier)
    maximum = clip(budget, 0.1, 1e3)          (auto_maximum: the default recipe's)
    scale   = span / min(ramp_fraction * total, total - 1)   (stretched; 1 otherwise)
    ```

    ``total`` is the run's counts (``epochs * steps``, or ``epochs`` per
    epoch): a stretched schedule ends at ``ramp_fraction`` of the run and by
    its last step at the latest.

    Example:

    >>> p = plan(None, auto_maximum=True, ramp_fraction=0.7, unit="step", steps=10,
    ...          epochs=100, learning_rate=1e-3)
    >>> p.schedule.stop, round(p.scale, 6), p.counts_per_epoch
    (49.382716049382715, 1.428571, 10)
    """
    per_epoch = 1 if unit == "epoch" else (steps or 0)
    total = epochs * per_epoch if epochs and per_epoch else None
    budget = None
    if steps and epochs and learning_rate is not None:
        budget = gamma_budget(epochs * steps, learning_rate, multiplier)
    if auto_maximum:
        maximum = DEFAULT_MAXIMUM if budget is None else max(min(DEFAULT_MAXIMUM, budget), 0.1)
        schedule = default_schedule(maximum)
    scale = 1.0
    if ramp_fraction is not None and total:
        scale = span_of(schedule) / min(ramp_fraction * total, max(total - 1, 1))
    unknown = not total and (ramp_fraction is not None or auto_maximum)
    return RunPlan(schedule, scale, per_epoch, budget, unknown)
