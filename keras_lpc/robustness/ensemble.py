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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from keras_lpc._validation import check_choice, check_int
from keras_lpc.robustness import _registry
from keras_lpc.robustness._checks import check_clip, check_inputs, check_labels
from keras_lpc.robustness._core import Scorer
from keras_lpc.robustness._norms import NORMS, lp_norm
from keras_lpc.robustness._registry import ATTACKS, AttackFn
from keras_lpc.robustness.deepfool import DeepFoolResult

#: DeepFool over-reads an input when its distance exceeds this many times the best.
OVERESTIMATE = 1.5


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
    flipped = finite & (scorer.predict(xa) != labels)
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
    apgd-dlr, boundary`` for L-inf. Every attack, built-in, registered with
    `register_attack` or a callable in ``attacks``, is run as
    ``fn(scorer, x, labels, *, norm, budget, clip, rng)`` (``scorer`` the
    model's `Scorer`, ``rng`` a NumPy ``Generator`` seeded by ``seed`` and the
    attack's position) and returns a perturbation of ``x``'s shape; it is
    verified like the built-ins and reported under its name (a callable's
    ``__name__``, default budget 100). A callable with the former signature
    ``fn(model, x, labels, *, norm, budget, clip, seed)`` (a ``seed`` parameter
    and no ``rng``) still runs, with a ``DeprecationWarning``.

    Args:
        model: a Keras classifier returning class scores (N, C), C >= 2 (a final
            softmax is skipped, see `keras_lpc.robustness`).
        x: inputs, a batch matching the model's input shape.
        y: optional true labels (N,) or one-hot rows.
        norm: ``"l2"`` or ``"linf"``.
        attacks: names from ``ATTACKS`` (registered attacks) and/or callables;
            default per ``norm``.
        budget: an integer ``>= 1`` for every attack, or a dict name -> integer
            (names of registered attacks that do not run are ignored).
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
        ValueError: unknown ``norm`` or attack name, an attack that does not
            support ``norm``, repeated attack, a ``budget``
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
    chosen = _registry.resolve(attacks, norm)
    budgets = _registry.budgets(budget, [n for n, _ in chosen])
    clip = check_clip(clip)
    seed = check_int("seed", seed)
    if verbose not in (0, 1, "auto"):
        raise ValueError(f"`verbose` must be 0, 1 or 'auto'. Received: verbose={verbose!r}")
    scorer = Scorer(model, batch_size, outputs)
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
            else:
                r = _registry.run(
                    attack, scorer, xa, la, norm=norm, budget=budgets[name], clip=clip,
                    seed=seed, order=order,
                )  # fmt: skip
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
