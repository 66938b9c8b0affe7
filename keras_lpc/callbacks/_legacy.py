"""Earlier call forms of keras_lpc's callbacks, kept working with a DeprecationWarning."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from keras_lpc._validation import check_choice, check_float

# GammaAnnealing's positional order before the policies were objects.
ANNEALING_POSITIONAL = (
    "unit",
    "layers",
    "verbose",
    "pace",
    "ramp_fraction",
    "hold_monitor",
    "hold_fraction",
    "max_gamma",
    "hold_mode",
    "hold_min_delta",
    "hold_baseline",
    "pacing",
)
_HOLD = ("hold_monitor", "hold_fraction", "hold_mode", "hold_min_delta", "hold_baseline")


def legacy_positional(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate ``__init__(self, first, *, ...)`` to accept the old positional form.

    ``Callback(first, a, b)`` runs as ``Callback(first, names[0]=a, names[1]=b)``
    with a `DeprecationWarning` naming the arguments; more positional
    arguments than ``names``, or one also given by keyword, is a `TypeError`.
    """

    def decorate(init: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(init)
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> None:
            first, rest = (args[0], args[1:]) if args else (_MISSING, ())
            if rest:
                owner = type(self).__name__
                if len(rest) > len(names):
                    raise TypeError(
                        f"{owner}() takes its first argument and at most {len(names)} more "
                        f"positional arguments. Received: {len(rest)} more"
                    )
                given = names[: len(rest)]
                twice = [n for n in given if n in kwargs]
                if twice:
                    raise TypeError(
                        f"{owner}() got `{twice[0]}` both by position and by keyword. "
                        f"Received: {twice[0]}={rest[given.index(twice[0])]!r} and "
                        f"{twice[0]}={kwargs[twice[0]]!r}"
                    )
                warnings.warn(
                    f"{owner}: passing {', '.join(given)} by position is "
                    "deprecated; pass them by keyword.",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs.update(zip(given, rest))
            if first is _MISSING:
                init(self, **kwargs)
            else:
                init(self, first, **kwargs)

        return wrapped

    return decorate


_MISSING = object()


def translate(
    deprecated: dict[str, Any], policy: Any, ramp_fraction: Any, schedule: Any
) -> tuple[Any, Any]:
    """``GammaAnnealing``'s flat arguments of earlier versions as ``(policy, ramp_fraction)``.

    ``pace=False`` is ``ramp_fraction=None``; ``pace=True``/``"auto"`` keeps
    ``ramp_fraction`` (``"auto"``: 0.95, or 0.7 with a `TrainingPace`);
    ``hold_*`` build a `Hold`; ``pacing`` a `TrainingPace` (``None``: none).
    Only the arguments given are translated; the others take today's
    defaults (an explicit schedule has no policy unless one is given).
    """
    from keras_lpc.annealing.pace import TrainingPace
    from keras_lpc.annealing.policies import Hold

    unknown = sorted(set(deprecated) - {"pace", "pacing", *_HOLD})
    if unknown:
        raise TypeError(
            f"GammaAnnealing() got an unexpected keyword argument {unknown[0]!r}. "
            f"Received: {unknown[0]}={deprecated[unknown[0]]!r}"
        )
    if not deprecated:
        return policy, ramp_fraction
    if policy != "auto":
        raise ValueError(
            "`policy` replaces the deprecated arguments "
            f"{', '.join(sorted(deprecated))}; give one or the other. Received: policy={policy!r}"
        )
    warnings.warn(
        f"GammaAnnealing: {', '.join(sorted(deprecated))} are deprecated; pass "
        "policy=keras_lpc.annealing.Hold(...) / TrainingPace(...) and ramp_fraction=.",
        DeprecationWarning,
        stacklevel=4,
    )
    monitor = deprecated.get("hold_monitor", "accuracy")
    if monitor is not None and not isinstance(monitor, str):
        raise TypeError(
            f"`hold_monitor` must be a metric name or None. Received: hold_monitor={monitor!r}"
        )
    policies: list[Any] = []
    if monitor is not None and (any(k in deprecated for k in _HOLD) or schedule is None):
        fraction = check_float("hold_fraction", deprecated.get("hold_fraction", 0.8), minimum=0.0)
        if fraction > 1:
            raise ValueError(
                f"`hold_fraction` must be in [0, 1]. Received: hold_fraction={fraction!r}"
            )
        policies.append(
            Hold(
                monitor,
                fraction,
                check_choice(
                    "hold_mode", deprecated.get("hold_mode", "auto"), ("auto", "max", "min")
                ),
                check_float("hold_min_delta", deprecated.get("hold_min_delta", 0.0), minimum=0.0),
                deprecated.get("hold_baseline", "auto"),
            )
        )
    pacing = deprecated.get("pacing", "auto")
    if isinstance(pacing, dict):
        pacing = TrainingPace(**pacing)
    if pacing == "auto":
        pacing = TrainingPace() if schedule is None and monitor is not None else None
    if pacing is not None:
        if not isinstance(pacing, TrainingPace):
            raise ValueError(
                "`pacing` must be 'auto', None, a keras_lpc.annealing.TrainingPace or its "
                f"config dict. Received: pacing={pacing!r}"
            )
        if monitor is None:
            raise ValueError(
                "`pacing` reads a training accuracy from `hold_monitor`. Received: "
                f"pacing={pacing!r} with hold_monitor=None"
            )
        pacing.monitor = monitor
        policies.append(pacing)
    pace = deprecated.get("pace", "auto")
    if pace not in ("auto", True, False):
        raise ValueError(f"`pace` must be one of 'auto', True, False. Received: pace={pace!r}")
    if pace is False:
        ramp_fraction = None
    elif ramp_fraction == "auto" and schedule is not None:
        from keras_lpc.annealing.plan import span_of
        from keras_lpc.annealing.schedules import get

        span = span_of(get(schedule))
        if span is None and pace is True:
            raise ValueError(
                "`pace=True` needs a schedule with a finite `span` (a keras_lpc schedule "
                f"that settles). Received: schedule={schedule!r}"
            )
        paced = any(isinstance(p, TrainingPace) for p in policies)
        ramp_fraction = None if span is None else (0.7 if paced else 0.95)
    return policies, ramp_fraction
