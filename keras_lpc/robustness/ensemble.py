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
from typing import Any

import keras
import numpy as np

from keras_lpc._io import print_msg
from keras_lpc._validation import check_choice, check_int
from keras_lpc.robustness import _registry
from keras_lpc.robustness._checks import check_clip, check_inputs, check_labels
from keras_lpc.robustness._core import Scorer
from keras_lpc.robustness._norms import NORMS, lp_norm
from keras_lpc.robustness._registry import ATTACKS, AttackFn
from keras_lpc.robustness.decision import masked_gradients
from keras_lpc.robustness.deepfool import DeepFoolResult
from keras_lpc.robustness.results import (
    OVERESTIMATE,
    Masking,
    MinimalPerturbationResult,
    masking_of,
    overestimate,
    warn,
)

__all__ = ["OVERESTIMATE", "Masking", "MinimalPerturbationResult", "minimal_perturbation"]

#: Where the two best gradient attacks differ by more than this factor, they disagree.
DISAGREE = 1.25
#: What the gradient-free attacks search: ``"auto"`` (suspect inputs) or ``"all"``.
SEARCH = ("auto", "all")


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


def _suspects(
    by_attack: dict[str, np.ndarray], kinds: dict[str, str], zero: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per input, the index of the best gradient attack's perturbation among ``by_attack``'s
    (-1: none) and whether a gradient-free attack must search it fully: no gradient
    attack flipped it, its gradient is zero or not finite (``zero``), fewer than two
    gradient attacks ran, or the two best of them differ by more than `DISAGREE`."""
    names = [k for k in by_attack if kinds[k] == "gradient"]
    n = len(zero)
    if not names:
        return np.full(n, -1), np.ones(n, dtype=bool)
    table = np.stack([by_attack[k] for k in names])  # (G, N)
    order = np.sort(table, axis=0)
    first = order[0]
    second = order[1] if len(names) > 1 else np.full(n, np.inf)
    with np.errstate(invalid="ignore"):
        search = ~np.isfinite(first) | zero | ~(second <= DISAGREE * first)
    index = np.array([list(by_attack).index(k) for k in names])[np.argmin(table, axis=0)]
    return np.where(np.isfinite(first), index, -1), search


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
    search: str = "auto",
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
    ``mean_n min(deepfool_n / per_sample_n, 100)``.

    Built-in attacks and the unit of their ``budget``:

    ============  =========================================  ===============================
    name          method                                     budget (default)
    ============  =========================================  ===============================
    deepfool      `deepfool` (L2; its L2 step under linf)    steps (50)
    fmn           fast minimum-norm, `keras_lpc.robustness`  steps (100)
    pgd           PGD-CE with an 8-stage radius search       steps per radius (20), x8
    apgd-ce       APGD-CE with an 8-stage radius search      steps per radius (20), x8
    apgd-dlr      APGD-DLR with an 8-stage radius search     steps per radius (20), x8
    boundary      gradient-free (labels; scores if masked)   walk steps (40), x3 starts
    ============  =========================================  ===============================

    Defaults: ``deepfool, fmn, pgd, boundary`` for L2 and ``fmn, apgd-ce,
    apgd-dlr, boundary`` for L-inf. The gradient-free attacks (``kind="decision"``,
    ``boundary``) run last. With ``search="auto"`` they search fully only the
    inputs where the gradient attacks cannot be trusted: none flipped it, its
    input gradient is zero or not finite, or the two best gradient attacks
    differ by more than 25 %; elsewhere ``boundary`` refines the best gradient
    perturbation (a walk of a quarter of its steps from it). ``search="all"``
    searches every input. Every attack, built-in, registered with
    `register_attack` or a callable in ``attacks``, is run as
    ``fn(scorer, x, labels, *, norm, budget, clip, rng)`` (``scorer`` the
    model's `Scorer`, ``rng`` a NumPy ``Generator`` seeded by ``seed`` and the
    attack's position) and returns a perturbation of ``x``'s shape; it is
    verified like the built-ins and reported under its name (a callable's
    ``__name__``, default budget 100). A callable with the former signature
    ``fn(model, x, labels, *, norm, budget, clip, seed)`` (a ``seed`` parameter
    and no ``rng``) still runs, with a ``DeprecationWarning``.

    Warnings: ``masking.suspected`` (see `Masking`: zero or non-finite input
    gradients, gradient attacks that fail or lose by far to the gradient-free
    one) warns that the gradient-based distances are not to be trusted; a best
    perturbation below 1e-3 of ``||x||`` on more than half the attacked inputs
    warns with the likely cause (such as a ``Normalization`` layer dividing by
    a near-zero variance: the result is right, the model is that fragile).

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
        seed: seed of the random parts (random starts, probe directions): the
            same seed gives the same directions on every backend.
        batch_size: inputs per forward or backward pass.
        verbose: 0 (silent), 1 (a line per attack, named, with its time) or
            ``"auto"`` (lines when there are at least 256 inputs).
        outputs: ``"auto"``, ``"logits"`` or ``"probabilities"``: what the model
            returns (see `keras_lpc.robustness.deepfool`).
        deepfool_result: a `DeepFoolResult` already computed on the same ``x``
            (e.g. for the papers' score beside the ensemble): its
            perturbations stand in for the ``"deepfool"`` attack, which then
            does not run again. They are verified like any attack's; its own
            settings (``max_iter``, ``clip``) are the ones that count.
        search: ``"auto"`` or ``"all"``: the inputs the gradient-free attacks
            search fully (see above).

    Returns:
        A `MinimalPerturbationResult` (``print`` it for a summary).

    Raises:
        ValueError: unknown ``norm``, ``search`` or attack name, an attack that does
            not support ``norm``, repeated attack, a ``budget``
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
    >>> res.masking.suspected
    False
    """
    norm = check_choice("norm", norm, NORMS)
    search = check_choice("search", search, SEARCH)
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
    attacked = preds == labels
    active = np.flatnonzero(attacked)
    xa, la = x[active], labels[active]
    zero = np.zeros(n, dtype=bool)
    if active.size:
        zero[active] = masked_gradients(scorer, xa, la)
    kinds = {name: _registry.kind_of(attack) for name, attack in chosen}
    # the gradient-free attacks last: they start from the others' best points
    runs = [c for c in chosen if kinds[c[0]] != "decision"] + [
        c for c in chosen if kinds[c[0]] == "decision"
    ]
    by_attack: dict[str, np.ndarray] = {}
    deltas: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    show = verbose == 1 or (verbose == "auto" and n >= 256)
    for i, (name, attack) in enumerate(runs):
        start = time.perf_counter()
        dist = np.where(attacked, np.inf, 0.0)
        delta = np.zeros(x.shape, dtype="float64")
        extra: dict[str, Any] = {}
        if kinds[name] == "decision" and _registry.takes(attack, ("start", "search")):
            index, full = _suspects(by_attack, kinds, zero)
            known = np.full(x.shape, np.nan)
            for j, k in enumerate(by_attack):
                known[index == j] = deltas[k][index == j]
            full |= search == "all"
            extra = {"start": known[active], "search": full[active]}
        if show:
            what = f" ({int(extra['search'].sum())} searched, the rest refined)" if extra else ""
            print_msg(
                f"minimal_perturbation [{i + 1}/{len(runs)}] {name}: {active.size} inputs{what}"
            )
        if active.size:
            order = (
                ATTACKS.index(name)
                if name in ATTACKS
                else len(ATTACKS) + chosen.index((name, attack))
            )
            if name == "deepfool" and deepfool_result is not None:
                r = np.asarray(deepfool_result.perturbation)[active]
            else:
                r = _registry.run(
                    attack, scorer, xa, la, norm=norm, budget=budgets[name], clip=clip,
                    seed=seed, order=order, **extra,
                )  # fmt: skip
            r, d = _verify(scorer, xa, r, la, clip, norm, name)
            dist[active], delta[active] = d, r
        by_attack[name], deltas[name] = dist, delta
        seconds[name] = time.perf_counter() - start
        if show:
            flipped = float(np.mean(np.isfinite(dist[active]))) if active.size else 0.0
            print_msg(
                f"minimal_perturbation [{i + 1}/{len(runs)}] {name}: {seconds[name]:.1f} s, "
                f"flipped {flipped:.0%}"
            )
    names = [name for name, _ in chosen]  # the order asked for
    table = np.stack([by_attack[k] for k in names])  # (A, N)
    win = np.argmin(table, axis=0)
    best = table[win, np.arange(n)]
    perturbation = np.stack([deltas[k] for k in names])[win, np.arange(n)]
    perturbation[~np.isfinite(best)] = 0.0
    best_attack = np.array([names[w] for w in win], dtype=object)
    best_attack[~np.isfinite(best)] = "none"
    best_attack[~attacked] = "misclassified"
    xnorm = lp_norm(x.astype("float64"), norm)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(best == 0, 0.0, best / xnorm)
        rel_by = {k: np.where(by_attack[k] == 0, 0.0, by_attack[k] / xnorm) for k in names}
    finite = np.isfinite(rel)
    over = frac = None
    if "deepfool" in rel_by:
        over, frac = overestimate(rel_by["deepfool"], rel)
    masking = masking_of(rel_by, kinds, zero, attacked)
    result = MinimalPerturbationResult(
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
        masking=masking,
    )
    warn(result, model)
    return result
