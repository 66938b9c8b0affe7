"""What `keras_lpc.robustness.minimal_perturbation` returns: the distances, the masking
diagnosis, and a short summary.

`MinimalPerturbationResult` holds per input the best verified perturbation
and every attack's distance; `Masking` reads them for signs of gradient
masking (zero or non-finite input gradients, gradient attacks that fail or
lose by far to the gradient-free one); ``print(result)`` shows a summary of
a dozen lines (`MinimalPerturbationResult.summary`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from keras_lpc._models import iter_layers

#: DeepFool over-reads an input when its distance exceeds this many times the best.
OVERESTIMATE = 1.5
#: A DeepFool / best ratio counts at most this much in ``deepfool_overestimate``.
OVERESTIMATE_CAP = 100.0
#: A gradient-free attack "won" an input when it beat every gradient attack by this factor.
WIN = 1.05
#: `warn` when more than half the attacked inputs flip below this ``||r|| / ||x||``.
TINY = 1e-3
#: `Masking.suspected` when any share or the gap reaches its threshold here.
THRESHOLDS = {"zero_gradient": 0.05, "gradient_failed": 0.05, "decision_won": 0.25, "gap": 1.2}


@dataclass(frozen=True)
class Masking:
    """Signs of gradient masking in a `minimal_perturbation` result.

    Shares are over the attacked inputs (correctly classified, ``y`` given, or all);
    "gradient" attacks are the built-in ``deepfool``, ``fmn``, ``pgd``, ``apgd-*``
    (and registered attacks of ``kind="gradient"``), "gradient-free" ones
    ``boundary`` (``kind="decision"``).

    Attributes:
        zero_gradient: share of inputs whose input gradient of the margin
            ``z_y - max_{j != y} z_j`` at ``x`` is exactly zero or not finite.
        gradient_failed: share where no gradient attack flipped the input and a
            gradient-free one did (NaN when either kind did not run).
        decision_won: share where a gradient-free attack beat every gradient
            attack by more than ``WIN`` (5 %) (NaN when either kind did not run).
        gap: median over the inputs a gradient-free attack flipped of
            ``best gradient distance / best gradient-free distance`` (inf where no
            gradient attack flipped it; NaN when either kind did not run).
        suspected: any of ``zero_gradient >= 0.05``, ``gradient_failed >= 0.05``,
            ``decision_won >= 0.25``, ``gap >= 1.2``: the gradient-based distances
            are not to be trusted; `minimal_perturbation` warns.
    """

    zero_gradient: float
    gradient_failed: float
    decision_won: float
    gap: float
    suspected: bool

    def reasons(self) -> list[str]:
        """The signs that made `suspected` true, in words."""
        said = {
            "zero_gradient": f"the input gradient is zero or not finite on {self.zero_gradient:.0%} "
            "of the inputs",
            "gradient_failed": f"no gradient attack flipped {self.gradient_failed:.0%} of the "
            "inputs that the gradient-free attack flipped",
            "decision_won": f"the gradient-free attack beat every gradient attack by more than "
            f"5 % on {self.decision_won:.0%} of the inputs",
            "gap": f"the gradient attacks' best distance is {self.gap:.3g} x the gradient-free "
            "attack's (median)",
        }
        return [said[k] for k, limit in THRESHOLDS.items() if getattr(self, k) >= limit]

    def __str__(self) -> str:
        state = "SUSPECTED" if self.suspected else "not suspected"
        return (
            f"masking {state}: zero/non-finite gradient {self.zero_gradient:.0%}, gradient "
            f"attacks failed {self.gradient_failed:.0%}, gradient-free won {self.decision_won:.0%}"
            f", median gap {self.gap:.3g}"
        )


def masking_of(
    by_attack: dict[str, np.ndarray], kinds: dict[str, str], zero: np.ndarray, attacked: np.ndarray
) -> Masking:
    """The `Masking` of the distances ``by_attack`` (name -> (N,)), ``kinds`` (name ->
    ``"gradient"``, ``"decision"`` or ``"other"``), ``zero`` (N,) the zero/non-finite gradient
    flags and ``attacked`` (N,) the inputs that were attacked."""
    m = int(attacked.sum())
    if m == 0:
        return Masking(0.0, float("nan"), float("nan"), float("nan"), False)
    zero_share = float(np.mean(zero[attacked]))

    def best(kind: str) -> np.ndarray | None:
        rows = [v[attacked] for k, v in by_attack.items() if kinds.get(k) == kind]
        return np.min(np.stack(rows), axis=0) if rows else None

    grad, free = best("gradient"), best("decision")
    failed = won = gap = float("nan")
    if grad is not None and free is not None:
        flipped = np.isfinite(free)
        failed = float(np.mean(flipped & ~np.isfinite(grad)))
        with np.errstate(divide="ignore", invalid="ignore"):
            won = float(np.mean(flipped & (free * WIN < grad)))
            ratio = np.where(free > 0, grad / free, 1.0)[flipped]
        gap = float(np.median(ratio)) if ratio.size else float("nan")
    values = {
        "zero_gradient": zero_share,
        "gradient_failed": failed,
        "decision_won": won,
        "gap": gap,
    }
    suspected = any(values[k] >= limit for k, limit in THRESHOLDS.items())
    return Masking(zero_share, failed, won, gap, bool(suspected))


def overestimate(deepfool: np.ndarray, best: np.ndarray) -> tuple[float, float]:
    """``(mean of min(deepfool / best, 100), share of deepfool > 1.5 best)`` over the inputs with
    a finite, non-zero ``best`` (DeepFool failures count in the share, not in the mean)."""
    ok = np.isfinite(best) & (best > 0)
    if not ok.any():
        return float("nan"), float("nan")
    ratio = deepfool[ok] / best[ok]
    fine = np.isfinite(ratio)
    mean = float(np.mean(np.minimum(ratio[fine], OVERESTIMATE_CAP))) if fine.any() else np.nan
    return mean, float(np.mean(ratio > OVERESTIMATE))


@dataclass(repr=False)
class MinimalPerturbationResult:
    """What `minimal_perturbation` found; ``print(result)`` shows `summary`.

    Attributes:
        per_sample: (N,) best verified ``||r_n|| / ||x_n||`` over all attacks (in
            ``norm``); ``inf`` where no attack changed the prediction, 0 where
            the input is already misclassified (``y`` given).
        perturbation: (N, ...) the perturbation achieving it (zeros where none);
            ``model(x + r)`` (clipped to ``clip``) is misclassified.
        score: mean of the finite ``per_sample`` values (NaN if none is finite).
        by_attack: attack name -> (N,) that attack's own verified distances
            relative to ``||x_n||`` (``inf`` where it failed or its claim did not
            survive the check).
        best_attack: (N,) name of the attack that won each input (``"none"`` where
            all failed, ``"misclassified"`` where the input was misclassified).
        deepfool_overestimate: mean over inputs of ``min(deepfool / best, 100)``
            (1.0 = DeepFool was right; each ratio capped at 100, so that a masked
            model, where DeepFool's verified points lie 1e3 to 1e19 times too far,
            reads 100 rather than 1e18; inputs where DeepFool failed are left out
            of the mean), or ``None`` when DeepFool did not run.
        deepfool_overestimate_fraction: fraction of the inputs with a finite, non-zero
            best whose DeepFool distance exceeds 1.5 x the best (failures count), or
            ``None``.
        distance: (N,) the best perturbation's size ``||r_n||`` in input units (the
            same norm, not divided by ``||x_n||``): ``per_sample * ||x_n||``; 0 for
            misclassified inputs, ``inf`` where nothing flipped.
        labels: (N,) int, the labels each perturbation had to change: ``y`` when
            given, else the model's clean predictions ``argmax f(x)``.
        seconds: attack name -> wall time of that attack (seconds).
        norm: ``"l2"`` or ``"linf"``.
        masking: the `Masking` diagnosis (``masking.suspected``: the gradient
            attacks' distances are not to be trusted).
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
    masking: Masking | None = None

    def _counts(self) -> tuple[int, int, int]:
        mis = int(np.sum(self.best_attack == "misclassified"))
        attacked = len(self.per_sample) - mis
        return attacked, mis, int(np.sum(np.isfinite(self.per_sample))) - mis

    def summary(self) -> str:
        """A table of a dozen lines: inputs, the best distance's mean and median, per
        attack its time, share flipped, median distance and share won, DeepFool's
        over-read and the masking diagnosis."""
        attacked, mis, flipped = self._counts()
        keep = self.best_attack != "misclassified"
        best = self.per_sample[keep]
        fin = best[np.isfinite(best)]
        mean = f"{fin.mean():.4g}" if fin.size else "nan"
        med = f"{np.median(fin):.4g}" if fin.size else "nan"
        lines = [
            f"minimal_perturbation ({self.norm}): {len(self.per_sample)} inputs, {attacked} "
            f"attacked ({mis} misclassified), {flipped} flipped",
            f"  best ||r||/||x||: mean {mean}, median {med}",
            f"  {'attack':<12}{'seconds':>9}{'flipped':>9}{'median':>10}{'won':>6}",
        ]
        for name, dist in self.by_attack.items():
            d = dist[keep]
            ok = np.isfinite(d)
            median = f"{np.median(d[ok]):.4g}" if ok.any() else "-"
            share = f"{ok.mean():.0%}" if d.size else "-"
            won = f"{np.mean(self.best_attack[keep] == name):.0%}" if d.size else "-"
            secs = self.seconds.get(name, float("nan"))
            lines.append(f"  {name:<12}{secs:>9.2f}{share:>9}{median:>10}{won:>6}")
        if self.deepfool_overestimate is not None:
            lines.append(
                f"  DeepFool / best: {self.deepfool_overestimate:.3g} (over 1.5 x on "
                f"{self.deepfool_overestimate_fraction:.0%} of the inputs)"
            )
        if self.masking is not None:
            lines.append(f"  {self.masking}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        attacked, _, flipped = self._counts()
        names, counts = np.unique(self.best_attack, return_counts=True)
        won = {str(k): int(v) for k, v in sorted(zip(names, counts), key=lambda kv: -kv[1])}
        fin = self.per_sample[np.isfinite(self.per_sample) & (self.best_attack != "misclassified")]
        median = float(np.median(fin)) if fin.size else float("nan")
        masked = None if self.masking is None else self.masking.suspected
        return (
            f"MinimalPerturbationResult(norm={self.norm!r}, inputs={len(self.per_sample)}, "
            f"flipped={flipped}/{attacked}, score={self.score:.4g}, median={median:.4g}, "
            f"won={won}, seconds={sum(self.seconds.values()):.3g}, masking={masked})"
        )


def _fragile(model: Any) -> str:
    """Words naming the likely cause of perturbations below `TINY` of the input norm."""
    for layer in iter_layers(model):
        variance = getattr(layer, "variance", None)
        if not isinstance(layer, keras.layers.Normalization) or variance is None:
            continue
        std = np.sqrt(np.maximum(np.asarray(keras.ops.convert_to_numpy(variance)), 0.0))
        small = std < max(1e-6, 1e-3 * float(np.median(std)))
        if small.any():
            return (
                f"the Normalization layer {layer.name!r} divides {int(small.sum())} of its "
                f"{small.size} features by a standard deviation as small as {std.min():.3g} "
                "(features that were constant in the data it was adapted to)"
            )
    return (
        "a layer dividing by a near-zero scale (e.g. a Normalization layer adapted to data "
        "with constant features), or inputs on another scale than the model was trained on"
    )


def warn(result: MinimalPerturbationResult, model: Any) -> None:
    """The warnings of `minimal_perturbation` about ``result``: gradient masking
    (`Masking.suspected`), and perturbations below `TINY` of ``||x||`` on more than half
    the attacked inputs, with their likely cause."""
    name = getattr(model, "name", type(model).__name__)
    if result.masking is not None and result.masking.suspected:
        warnings.warn(
            f"minimal_perturbation: signs of gradient masking on model {name!r}: "
            + "; ".join(result.masking.reasons())
            + ". The gradient attacks' distances are not to be trusted on this model; the "
            "best distance comes from the gradient-free attack (see result.masking).",
            UserWarning,
            stacklevel=3,
        )
    attacked = result.best_attack != "misclassified"
    flipped = result.per_sample[attacked & np.isfinite(result.per_sample)]
    if flipped.size and np.mean(flipped < TINY) > 0.5:
        warnings.warn(
            f"minimal_perturbation: model {name!r} flips {np.mean(flipped < TINY):.0%} of the "
            f"attacked inputs with a perturbation below {TINY:g} of the input norm (median "
            f"||r||/||x|| {np.median(flipped):.2g}). The result is verified: the model is that "
            f"fragile. Likely cause: {_fragile(model)}.",
            UserWarning,
            stacklevel=3,
        )
