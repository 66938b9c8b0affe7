"""The one table of attacks that `minimal_perturbation` runs, by name.

Every attack, built-in or registered by a user, has one signature::

    attack(scorer, x, labels, *, norm, budget, clip, rng) -> perturbation (N, ...)

``scorer`` the model's `keras_lpc.robustness.Scorer`, ``x`` (N, ...) the
inputs to attack (in the model's input dtype), ``labels`` (N,) the labels a
perturbation must change, ``norm`` ``"l2"`` or ``"linf"``, ``budget`` an int in
the attack's own unit (steps, queries...), ``clip`` ``(lo, hi)`` or None and
``rng`` a `numpy.random.Generator`. The perturbation is a NumPy array or a
backend tensor; the ensemble verifies it by a forward pass.

Each entry has a ``kind``: ``"gradient"`` (it follows input gradients),
``"decision"`` (it does not: the ensemble runs these after the others, and
passes ``start=`` the best perturbation found so far and ``search=`` where a
full search is needed, to those whose signature takes them), or ``"other"``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_lpc._validation import check_choice, check_int
from keras_lpc.robustness._core import Scorer
from keras_lpc.robustness._norms import NORMS
from keras_lpc.robustness.apgd import apgd_ce_attack, apgd_dlr_attack
from keras_lpc.robustness.attacks import pgd_attack
from keras_lpc.robustness.decision import boundary_attack
from keras_lpc.robustness.deepfool import deepfool_attack
from keras_lpc.robustness.fmn import fmn_attack

AttackFn = Callable[..., Any]

#: The budget of a callable passed to `minimal_perturbation` that is not registered.
UNREGISTERED_BUDGET = 100
#: What an attack reads from the model (see `register_attack`).
KINDS = ("gradient", "decision", "other")


@dataclass(frozen=True)
class Entry:
    """One registered attack: its function, default budget, norms, the norms whose
    default ensemble runs it, and its kind."""

    name: str
    fn: AttackFn
    default_budget: int
    norms: tuple[str, ...]
    default_for: tuple[str, ...]
    kind: str = "other"


_TABLE: dict[str, Entry] = {}


def register_attack(
    name: str,
    fn: AttackFn,
    *,
    default_budget: int = UNREGISTERED_BUDGET,
    norms: Sequence[str] = NORMS,
    default_for: Sequence[str] = (),
    replace: bool = False,
    kind: str = "other",
) -> None:
    """Register ``fn`` as the attack ``name`` of `minimal_perturbation`.

    ``fn`` is called as ``fn(scorer, x, labels, *, norm, budget, clip, rng)`` and
    returns a perturbation of ``x``'s shape (a NumPy array or a backend tensor),
    which the ensemble verifies by a forward pass like every attack's. Once
    registered, ``name`` is accepted in ``attacks=`` and ``budget={name: ...}``
    and listed in `ATTACKS`; the attacks run in the order they were registered.

    Args:
        name: the attack's name, a non-empty string.
        fn: the attack (see above).
        default_budget: its budget when ``budget`` does not give one, ``>= 1``,
            in the attack's own unit.
        norms: the norms it supports (``"l2"``, ``"linf"``); asking it for another
            raises.
        default_for: the norms whose default ensemble (``attacks=None``) runs it.
        replace: allow replacing an attack already registered under ``name``.
        kind: ``"gradient"`` (it follows input gradients: counted as such in
            `keras_lpc.robustness.results.Masking`), ``"decision"`` (it does not:
            run after the others; if ``fn`` takes ``start`` and ``search`` keyword
            arguments it receives the best perturbation found so far per input
            (NaN rows where none) and a boolean mask of the inputs that need a full
            search, see `minimal_perturbation`), or ``"other"``.

    Raises:
        ValueError: an empty or already registered ``name`` (without ``replace``),
            ``default_budget < 1``, unknown norms or ``kind``, ``default_for`` not in
            ``norms``.
        TypeError: ``fn`` not callable, a non-integer ``default_budget``.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.robustness import ATTACKS, register_attack
    >>> def sign_step(scorer, x, labels, *, norm, budget, clip, rng):
    ...     return 0.1 * budget * np.sign(rng.standard_normal(x.shape))
    >>> register_attack("sign-step", sign_step, default_budget=3)
    >>> ATTACKS[-1]
    'sign-step'
    >>> unregister_attack("sign-step")
    >>> "sign-step" in ATTACKS
    False
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
    if name in _TABLE and not replace:
        raise ValueError(
            f"`name` must not be registered already (pass replace=True to replace it). "
            f"Received: name={name!r}"
        )
    if not callable(fn):
        raise TypeError(f"`fn` must be a callable attack. Received: fn={fn!r}")
    default_budget = check_int("default_budget", default_budget, minimum=1)
    norms, default_for = tuple(norms), tuple(default_for)
    if not norms or any(n not in NORMS for n in norms):
        raise ValueError(f"`norms` must hold 'l2' and/or 'linf'. Received: norms={norms!r}")
    if any(n not in norms for n in default_for):
        raise ValueError(
            f"`default_for` must hold norms of `norms` {norms}. Received: default_for={default_for!r}"
        )
    kind = check_choice("kind", kind, KINDS)
    _TABLE[name] = Entry(name, fn, default_budget, norms, default_for, kind)


def unregister_attack(name: str) -> None:
    """Remove the attack ``name`` from the table (see `register_attack`).

    Raises:
        ValueError: ``name`` is not registered.
    """
    if name not in _TABLE:
        raise ValueError(
            f"`name` must be a registered attack ({', '.join(repr(n) for n in _TABLE)}). "
            f"Received: name={name!r}"
        )
    del _TABLE[name]


class _Names(Sequence):
    """The names of the registered attacks, in order: a read-only, live view of the table
    that compares equal to the tuple of those names."""

    def __getitem__(self, index: Any) -> Any:
        return tuple(_TABLE)[index]

    def __len__(self) -> int:
        return len(_TABLE)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_TABLE))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (Sequence)) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Sequence[str]) -> tuple[str, ...]:
        return tuple(self) + tuple(other)

    def __repr__(self) -> str:
        return repr(tuple(self))


#: The names of the attacks `minimal_perturbation` knows, in the order they run.
ATTACKS = _Names()


def default_attacks(norm: str) -> tuple[str, ...]:
    """The names of the default ensemble for ``norm``, in table order."""
    return tuple(e.name for e in _TABLE.values() if norm in e.default_for)


def resolve(attacks: Any, norm: str) -> list[tuple[str, str | AttackFn]]:
    """``attacks`` as ``(name, name or callable)`` pairs; the default ensemble for None."""
    if attacks is None:
        attacks = default_attacks(norm)
    if isinstance(attacks, str) or callable(attacks):
        attacks = (attacks,)
    if not isinstance(attacks, Sequence) or len(attacks) == 0:
        raise ValueError(
            "`attacks` must be a non-empty list of attack names (one of "
            f"{', '.join(repr(a) for a in ATTACKS)}) or callables. Received: attacks={attacks!r}"
        )
    out: list[tuple[str, str | AttackFn]] = []
    for a in attacks:
        if isinstance(a, str):
            if a not in _TABLE:
                raise ValueError(
                    f"`attacks` must name registered attacks ({', '.join(repr(n) for n in ATTACKS)})"
                    f" or be callables. Received: attacks={list(attacks)!r} with {a!r}"
                )
            if norm not in _TABLE[a].norms:
                raise ValueError(
                    f"`attacks` must support norm={norm!r}: {a!r} supports {_TABLE[a].norms}. "
                    f"Received: attacks={list(attacks)!r}"
                )
            out.append((a, a))
        elif callable(a):
            out.append((getattr(a, "__name__", type(a).__name__), a))
        else:
            raise TypeError(
                "`attacks` must hold attack names (str) or callables. "
                f"Received: attacks={list(attacks)!r} with {a!r}"
            )
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"`attacks` must not repeat a name. Received: attacks={names!r}")
    return out


def budgets(budget: Any, names: list[str]) -> dict[str, int]:
    """The budget of each attack in ``names``: an int for all, a dict by name, or defaults."""

    def default(name: str) -> int:
        entry = _TABLE.get(name)
        return UNREGISTERED_BUDGET if entry is None else entry.default_budget

    if budget is None:
        return {n: default(n) for n in names}
    if isinstance(budget, dict):
        unknown = sorted(str(k) for k in set(budget) - set(names) - set(_TABLE))
        if unknown:
            raise ValueError(
                f"`budget` must only name attacks ({', '.join(sorted(set(names) | set(_TABLE)))})."
                f" Received: budget={budget!r}"
            )
        out = {n: default(n) for n in names}
        out.update(
            {k: check_int(f"budget[{k!r}]", v, minimum=1) for k, v in budget.items() if k in out}
        )
        return out
    value = check_int("budget", budget, minimum=1)
    return dict.fromkeys(names, value)


def kind_of(attack: str | AttackFn) -> str:
    """The kind of a registered attack's name; ``"other"`` for a callable."""
    return _TABLE[attack].kind if isinstance(attack, str) and attack in _TABLE else "other"


def takes(attack: str | AttackFn, names: Sequence[str]) -> bool:
    """Whether the attack's function accepts every keyword of ``names`` (or ``**kwargs``)."""
    fn = _TABLE[attack].fn if isinstance(attack, str) else attack
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return True
    return all(n in params for n in names)


def _legacy(fn: AttackFn) -> bool:
    """Whether ``fn`` has the former signature ``fn(model, x, labels, *, ..., seed)``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to read (some builtins): the current one
        return False
    return "seed" in params and "rng" not in params


def run(
    attack: str | AttackFn,
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    norm: str,
    budget: int,
    clip: tuple[float, float] | None,
    seed: int,
    order: int,
    **extra: Any,
) -> Any:
    """Run ``attack`` (a registered name or a callable) on copies of ``x`` and ``labels``,
    with ``rng = numpy.random.default_rng([seed, order])`` and the keyword arguments
    ``extra`` (for attacks of the current signature only).

    A callable with the former signature ``fn(model, x, labels, *, norm, budget, clip,
    seed)`` (a ``seed`` parameter and no ``rng``) is called that way, with a
    ``DeprecationWarning``.
    """
    fn = _TABLE[attack].fn if isinstance(attack, str) else attack
    x, labels = x.copy(), labels.copy()
    if _legacy(fn):
        warnings.warn(
            f"attack {getattr(fn, '__name__', fn)!r}: the signature fn(model, x, labels, *, "
            "norm, budget, clip, seed) is deprecated; write fn(scorer, x, labels, *, norm, "
            "budget, clip, rng) (scorer.model is the model, rng a numpy Generator).",
            DeprecationWarning,
            stacklevel=3,
        )
        return fn(scorer.model, x, labels, norm=norm, budget=budget, clip=clip, seed=seed)
    rng = np.random.default_rng([seed, order])
    return fn(scorer, x, labels, norm=norm, budget=budget, clip=clip, rng=rng, **extra)


for _name, _fn, _budget, _defaults, _kind in (
    ("deepfool", deepfool_attack, 50, ("l2",), "gradient"),
    ("fmn", fmn_attack, 200, NORMS, "gradient"),
    ("pgd", pgd_attack, 20, ("l2",), "gradient"),
    ("apgd-ce", apgd_ce_attack, 20, ("linf",), "gradient"),
    ("apgd-dlr", apgd_dlr_attack, 20, ("linf",), "gradient"),
    ("boundary", boundary_attack, 40, NORMS, "decision"),
):
    register_attack(_name, _fn, default_budget=_budget, default_for=_defaults, kind=_kind)
