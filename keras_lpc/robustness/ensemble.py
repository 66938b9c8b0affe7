"""The verified attack ensemble: the smallest perturbation any of several attacks finds.

DeepFool linearises the model and over-reads the distance to the decision
boundary wherever the model is far from linear; a gradient attack can be
fooled by masked gradients. `minimal_perturbation` runs several attacks of
different kinds (DeepFool, FMN, PGD/APGD with a radius search, and a
decision-based attack that never uses gradients), **re-checks every
perturbation by a forward pass**, and keeps per input the smallest one that
really changes the prediction.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from keras_lpc._validation import check_choice, check_int
from keras_lpc.robustness._minnorm import NORMS, Scorer, check_clip, lp_norm, predict
from keras_lpc.robustness._radius import bisect_min_norm, first_order_radius, pgd_run
from keras_lpc.robustness._scores import OUTPUTS, check_inputs, check_labels
from keras_lpc.robustness.apgd import apgd_run
from keras_lpc.robustness.decision import boundary_attack
from keras_lpc.robustness.deepfool import DeepFoolResult, deepfool
from keras_lpc.robustness.fmn import fmn_attack

#: Names of the built-in attacks, in the order they run.
ATTACKS = ("deepfool", "fmn", "pgd", "apgd-ce", "apgd-dlr", "boundary")
#: The attacks run by default for each norm.
DEFAULT_ATTACKS = {
    "l2": ("deepfool", "fmn", "pgd", "boundary"),
    "linf": ("fmn", "apgd-ce", "apgd-dlr", "boundary"),
}
#: Default budget of each attack (its unit is in `minimal_perturbation`'s docstring).
DEFAULT_BUDGET = {
    "deepfool": 50,
    "fmn": 100,
    "pgd": 20,
    "apgd-ce": 20,
    "apgd-dlr": 20,
    "boundary": 40,
}
#: Radius-search stages of the PGD / APGD minimum-norm attacks.
STAGES = 8
#: DeepFool over-reads an input when its distance exceeds this many times the best.
OVERESTIMATE = 1.5

AttackFn = Callable[..., Any]


@dataclass
class MinimalPerturbationResult:
    """What `minimal_perturbation` found.

    Attributes:
        per_sample: (N,) best verified ``||r_n|| / ||x_n||`` over all attacks (in
            ``norm``); ``inf`` where no attack changed the prediction, 0 where
            the input is already misclassified (``y`` given).
        perturbation: (N, ...) the perturbation achieving it (zeros where none);
            ``model(x + r)`` (clipped to ``clip``) is misclassified.
        score: mean of the finite ``per_sample`` values (NaN if none is finite).
        by_attack: attack name -> (N,) that attack's own verified distances
            (``inf`` where it failed or its claim did not survive the check).
        best_attack: (N,) name of the attack that won each input (``"none"`` where
            all failed, ``"misclassified"`` where the input was misclassified).
        deepfool_overestimate: mean over inputs of ``deepfool / best`` (1.0 = DeepFool
            was right; inputs where DeepFool failed are left out of the mean), or
            ``None`` when DeepFool did not run.
        deepfool_overestimate_fraction: fraction of the inputs with a finite, non-zero
            best whose DeepFool distance exceeds 1.5 x the best (failures count), or
            ``None``.
        distance: (N,) the best ``||r_n||`` in input units.
        labels: (N,) the labels a perturbation must change (``y``, or the clean
            predictions).
        seconds: attack name -> wall time of that attack.
        norm: ``"l2"`` or ``"linf"``.
    """

    per_sample: np.ndarray
    perturbation: np.ndarray
    score: float
    by_attack: dict[str, np.ndarray]
    best_attack: np.ndarray
    deepfool_overestimate: float | None
    deepfool_overestimate_fraction: float | None
    distance: np.ndarray
    labels: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)
    norm: str = "l2"


def _run_builtin(
    name: str,
    model: Any,
    scorer: Scorer,
    x: np.ndarray,
    labels: np.ndarray,
    norm: str,
    budget: int,
    clip: tuple[float, float] | None,
    rng: np.random.Generator,
) -> np.ndarray:
    if name == "deepfool":
        with warnings.catch_warnings():  # unflipped inputs: the ensemble reports them itself
            warnings.simplefilter("ignore")
            res = deepfool(
                model,
                x,
                max_iter=budget,
                clip=clip,
                batch_size=scorer.batch_size,
                outputs=scorer.outputs,
            )
        return res.perturbation
    if name == "fmn":
        return fmn_attack(scorer, x, labels, norm=norm, steps=budget, clip=clip)
    if name == "boundary":
        queries = Scorer(
            model, 16 * scorer.batch_size, scorer.outputs
        )  # forward passes only: larger batches
        return boundary_attack(queries, x, labels, norm=norm, iterations=budget, clip=clip, rng=rng)
    if name == "pgd":

        def run(xs: np.ndarray, idx: np.ndarray, eps: np.ndarray) -> Any:
            return pgd_run(
                scorer, xs, labels[idx], eps, norm=norm, steps=budget, clip=clip, rng=rng
            )

    else:
        loss = name.split("-")[1]

        def run(xs: np.ndarray, idx: np.ndarray, eps: np.ndarray) -> Any:
            return apgd_run(
                scorer,
                xs,
                labels[idx],
                eps,
                norm=norm,
                steps=budget,
                loss=loss,
                clip=clip,
                rng=rng,
            )

    start = 1.1 * first_order_radius(scorer, x, labels, norm)
    return bisect_min_norm(run, x, norm, STAGES, start)


def _names(attacks: Any, norm: str) -> list[tuple[str, str | AttackFn]]:
    if attacks is None:
        attacks = DEFAULT_ATTACKS[norm]
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
            if a not in ATTACKS:
                raise ValueError(
                    f"`attacks` must name built-in attacks ({', '.join(repr(n) for n in ATTACKS)})"
                    f" or be callables. Received: attacks={list(attacks)!r} with {a!r}"
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


def _budgets(budget: Any, names: list[str]) -> dict[str, int]:
    if budget is None:
        return {n: DEFAULT_BUDGET.get(n, 100) for n in names}
    if isinstance(budget, dict):
        unknown = sorted(str(k) for k in set(budget) - set(names) - set(ATTACKS))
        if unknown:
            raise ValueError(
                f"`budget` must only name attacks ({', '.join(sorted(set(names) | set(ATTACKS)))})."
                f" Received: budget={budget!r}"
            )
        out = {n: DEFAULT_BUDGET.get(n, 100) for n in names}
        out.update(
            {k: check_int(f"budget[{k!r}]", v, minimum=1) for k, v in budget.items() if k in out}
        )
        return out
    value = check_int("budget", budget, minimum=1)
    return dict.fromkeys(names, value)


def _verify(
    scorer: Scorer,
    x: np.ndarray,
    r: Any,
    labels: np.ndarray,
    clip: tuple[float, float] | None,
    norm: str,
    name: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The perturbation as it reaches the model (N, ...) and its verified distance (N,)."""
    r = np.asarray(keras.ops.convert_to_numpy(r), dtype="float64")
    if r.shape != x.shape:
        raise ValueError(
            f"attack {name!r} must return a perturbation of the inputs' shape {x.shape}. "
            f"Received: a perturbation with shape {r.shape}"
        )
    finite = np.all(np.isfinite(r.reshape(len(r), -1)), axis=1)
    r = np.where(np.isfinite(r), r, 0.0)
    xa = x.astype("float64") + r
    if clip is not None:
        xa = np.clip(xa, *clip)
    xa = xa.astype(scorer.dtype)
    r = xa.astype("float64") - x
    flipped = finite & (predict(scorer, xa) != labels)
    size = lp_norm(r, norm)
    return r, np.where(flipped, size, np.inf)


def minimal_perturbation(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    norm: str = "l2",
    attacks: Sequence[str | AttackFn] | None = None,
    budget: int | dict[str, int] | None = None,
    clip: tuple[float, float] | None = None,
    seed: int = 0,
    batch_size: int = 256,
    verbose: int | str = "auto",
    outputs: str = "auto",
    deepfool_result: DeepFoolResult | None = None,
) -> MinimalPerturbationResult:
    """The smallest verified perturbation that changes each prediction, over several attacks.

    Each attack proposes a perturbation ``r_a`` per input; the library feeds
    ``x + r_a`` (clipped to ``clip``, cast to the model's dtype) through the
    model and keeps it only if ``argmax f(x + r_a) != label``, where ``label``
    is ``y`` when given, else the clean prediction ``argmax f(x)``. With ``y``
    given, inputs the model already misclassifies get distance 0 and are not
    attacked. The result per input is::

        per_sample_n = min_a ||r_{a,n}|| / ||x_n||      (verified r only; inf if none)

    in the chosen norm (L2 or L-inf, the same norm for ``r`` and ``x``), and
    ``score`` is the mean of its finite values. ``deepfool_overestimate`` is
    ``mean_n deepfool_n / per_sample_n``.

    Built-in attacks and the unit of their ``budget``:

    ============  =========================================  ===============================
    name          method                                     budget (default)
    ============  =========================================  ===============================
    deepfool      `deepfool` (L2; its L2 step under linf)    steps (50)
    fmn           fast minimum-norm, `keras_lpc.robustness`  steps (100)
    pgd           PGD-CE with an 8-stage radius search       steps per radius (20), x8
    apgd-ce       APGD-CE with an 8-stage radius search      steps per radius (20), x8
    apgd-dlr      APGD-DLR with an 8-stage radius search     steps per radius (20), x8
    boundary      decision-based (labels only, HopSkipJump)  walk steps (40), x3 starts
    ============  =========================================  ===============================

    Defaults: ``deepfool, fmn, pgd, boundary`` for L2 and ``fmn, apgd-ce,
    apgd-dlr, boundary`` for L-inf. A callable in ``attacks`` is run as
    ``fn(model, x, labels, norm=, budget=, clip=, seed=)`` and must return a
    perturbation of ``x``'s shape; it is verified like the built-ins and
    reported under its ``__name__`` (default budget 100).

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2 (a final
            softmax is skipped, see `keras_lpc.robustness`).
        x: inputs, a batch matching the model's input shape.
        y: optional true labels (N,) or one-hot rows.
        norm: ``"l2"`` or ``"linf"``.
        attacks: names from ``ATTACKS`` and/or callables; default per ``norm``.
        budget: an integer ``>= 1`` for every attack, or a dict name -> integer
            (names of built-in attacks that do not run are ignored).
        clip: optional ``(lo, hi)`` range of valid inputs.
        seed: seed of the random parts (random starts, probe directions).
        batch_size: inputs per forward or backward pass.
        verbose: 0 (silent), 1 (a progress bar over the attacks) or ``"auto"``
            (a bar when there are at least 256 inputs).
        outputs: ``"auto"``, ``"logits"`` or ``"probabilities"``: what the model
            returns (see `keras_lpc.robustness.deepfool`).
        deepfool_result: a `DeepFoolResult` already computed on the same ``x``
            (e.g. for the papers' score reported beside the ensemble): its
            perturbations stand in for the ``"deepfool"`` attack, which then
            does not run again. They are verified like any attack's; its own
            settings (``max_iter``, ``clip``) are the ones that count.

    Returns:
        A `MinimalPerturbationResult`.

    Raises:
        ValueError: unknown ``norm`` or attack name, repeated attack, a ``budget``
            naming an attack that does not run, ``budget < 1``, bad ``clip``, ``x``
            or ``y``; a perturbation of the wrong shape from a custom attack.
        TypeError: a non-integer ``budget`` or ``seed``, an attack that is neither a
            name nor a callable, a non-Keras ``model``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import minimal_perturbation
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> # f_0 - f_1 = 2 x_0: the boundary x_0 = 0 lies 3 away from (3, 4), ||x|| = 5
    >>> res = minimal_perturbation(model, np.array([[3.0, 4.0]]), verbose=0)
    >>> print(round(float(res.per_sample[0]), 2), sorted(res.by_attack))
    0.6 ['boundary', 'deepfool', 'fmn', 'pgd']
    """
    norm = check_choice("norm", norm, NORMS)
    chosen = _names(attacks, norm)
    budgets = _budgets(budget, [n for n, _ in chosen])
    clip = check_clip(clip)
    seed = check_int("seed", seed)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if verbose not in (0, 1, "auto"):
        raise ValueError(f"`verbose` must be 0, 1 or 'auto'. Received: verbose={verbose!r}")
    outputs = check_choice("outputs", outputs, OUTPUTS)
    x = check_inputs(model, x)
    if deepfool_result is not None:
        if not isinstance(deepfool_result, DeepFoolResult):
            raise TypeError(
                "`deepfool_result` must be a DeepFoolResult (from `deepfool`) or None. "
                f"Received: deepfool_result of type {type(deepfool_result).__name__}"
            )
        if np.shape(deepfool_result.perturbation) != x.shape:
            raise ValueError(
                f"`deepfool_result` must come from the same inputs, shape {x.shape}. "
                f"Received: a perturbation with shape {np.shape(deepfool_result.perturbation)}"
            )
    scorer = Scorer(model, batch_size, outputs)
    preds = np.argmax(scorer.forward(x), axis=1)
    labels = preds if y is None else check_labels(y, len(x), scorer.classes)
    n = len(x)
    active = np.flatnonzero(preds == labels)
    xa, la = x[active], labels[active]
    by_attack: dict[str, np.ndarray] = {}
    deltas: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    show = verbose == 1 or (verbose == "auto" and n >= 256)
    bar = keras.utils.Progbar(len(chosen), verbose=1, unit_name="attack") if show else None
    for i, (name, attack) in enumerate(chosen):
        start = time.perf_counter()
        dist = np.where(preds == labels, np.inf, 0.0)
        delta = np.zeros(x.shape, dtype="float64")
        if active.size:
            order = ATTACKS.index(name) if name in ATTACKS else len(ATTACKS) + i
            if name == "deepfool" and deepfool_result is not None:
                r = np.asarray(deepfool_result.perturbation)[active]
            elif isinstance(attack, str):
                rng = np.random.default_rng([seed, order])
                r = _run_builtin(attack, model, scorer, xa, la, norm, budgets[name], clip, rng)
            else:
                r = attack(
                    model,
                    xa.copy(),
                    la.copy(),
                    norm=norm,
                    budget=budgets[name],
                    clip=clip,
                    seed=seed,
                )
            r, d = _verify(scorer, xa, r, la, clip, norm, name)
            dist[active], delta[active] = d, r
        by_attack[name], deltas[name] = dist, delta
        seconds[name] = time.perf_counter() - start
        if bar is not None:
            bar.update(i + 1, [("finite", float(np.mean(np.isfinite(dist))))])
    names = list(by_attack)
    table = np.stack([by_attack[k] for k in names])  # (A, N)
    win = np.argmin(table, axis=0)
    best = table[win, np.arange(n)]
    perturbation = np.stack([deltas[k] for k in names])[win, np.arange(n)]
    perturbation[~np.isfinite(best)] = 0.0
    best_attack = np.array([names[w] for w in win], dtype=object)
    best_attack[~np.isfinite(best)] = "none"
    best_attack[preds != labels] = "misclassified"
    xnorm = lp_norm(x.astype("float64"), norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(best == 0, 0.0, best / xnorm)
        rel_by = {k: np.where(v == 0, 0.0, v / xnorm) for k, v in by_attack.items()}
    finite = np.isfinite(rel)
    over = frac = None
    if "deepfool" in rel_by:
        ok = finite & (rel > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = rel_by["deepfool"][ok] / rel[ok]
        over = float(np.mean(ratio[np.isfinite(ratio)])) if np.isfinite(ratio).any() else np.nan
        frac = float(np.mean(ratio > OVERESTIMATE)) if ok.any() else np.nan
    return MinimalPerturbationResult(
        per_sample=rel,
        perturbation=perturbation,
        score=float(np.mean(rel[finite])) if finite.any() else float("nan"),
        by_attack=rel_by,
        best_attack=best_attack.astype(str),
        deepfool_overestimate=over,
        deepfool_overestimate_fraction=frac,
        distance=best,
        labels=labels,
        seconds=seconds,
        norm=norm,
    )
