"""`robustness_bracket`: the certified radius beside the verified attack's distance, per input."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keras_lpc._validation import check_float
from keras_lpc.robustness.certify.radius import CertifiedRadiusResult, certified_radius
from keras_lpc.robustness.ensemble import minimal_perturbation

#: The three verdicts at ``eps``, in the order the summary lists them.
STATUSES = ("certified", "undecided", "adversarial")
#: Rounding allowed between the two sides (float32 bounds, float32 forward passes).
TOLERANCE = 1e-4


def bracket_ratios(certified: Any, found: Any) -> np.ndarray:
    """Per input ``certified_n / found_n`` (float64), NaN where ``found_n`` is 0.

    Example:

    >>> bracket_ratios([1.0, 0.5, 0.2], [2.0, 0.0, np.inf]).tolist()
    [0.5, nan, 0.0]
    """
    low, high = np.asarray(certified, "float64"), np.asarray(found, "float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(high > 0, low / high, np.nan)


def median_bracket_ratio(certified: Any, found: Any) -> float:
    """Median of ``certified_n / found_n`` over the inputs whose ``found_n`` is finite and
    above 0 (inputs no attack flipped are left out); NaN when there is none.

    Example:

    >>> median_bracket_ratio([1.0, 2.0, 3.0], [2.0, np.inf, 4.0])
    0.625
    """
    high = np.asarray(found, "float64")
    keep = np.isfinite(high) & (high > 0)
    if not keep.any():
        return float("nan")
    return float(np.median(bracket_ratios(np.asarray(certified)[keep], high[keep])))


@dataclass
class RobustnessBracket:
    """``certified <= true minimal perturbation <= found``, per input (`robustness_bracket`).

    Attributes:
        certified: (N,) certified radius relative to ``||x||`` (`certified_radius`).
        found: (N,) smallest verified perturbation relative to ``||x||``
            (`minimal_perturbation`; ``inf`` where no attack succeeded).
        ratio: (N,) ``certified / found`` (1: the bracket is closed, the truth is
            known; 0 where no attack succeeded; NaN for misclassified inputs).
        certified_distance, found_distance: (N,) the same in input units.
        status: (N,) at ``eps`` (input units): ``"certified"`` (``certified >
            eps``: no perturbation that small changes the label), ``"adversarial"``
            (``found <= eps``: one does; misclassified inputs too) or
            ``"undecided"``; ``None`` without ``eps``.
        eps: the radius of ``status``, or ``None``.
        labels, predictions: (N,) labels used and clean predictions.
        method, norm: the bound and the norm.
        certified_result, found_result: the two full results.
        seconds: ``{"certify": ..., "attack": ...}`` wall times.
    """

    certified: np.ndarray
    found: np.ndarray
    ratio: np.ndarray
    certified_distance: np.ndarray
    found_distance: np.ndarray
    status: np.ndarray | None
    eps: float | None
    labels: np.ndarray
    predictions: np.ndarray
    method: str
    norm: str
    certified_result: CertifiedRadiusResult = field(repr=False)
    found_result: Any = field(repr=False)
    seconds: dict[str, float] = field(default_factory=dict)

    def fractions(self) -> dict[str, float]:
        """Share of the inputs with each status at ``eps`` (empty without ``eps``)."""
        if self.status is None:
            return {}
        return {s: float(np.mean(self.status == s)) for s in STATUSES}

    def summary(self) -> str:
        """One line: accuracy, the ratio's median and spread, the statuses at ``eps``."""
        n = len(self.certified)
        ratio = self.ratio[np.isfinite(self.ratio)]
        accuracy = float(np.mean(self.predictions == self.labels))
        text = (
            f"robustness bracket ({self.method}, {self.norm}, {n} inputs): clean accuracy "
            f"{100 * accuracy:.1f}%"
        )
        if ratio.size:
            p10, p50, p90 = np.percentile(ratio, [10, 50, 90])
            text += f"; certified/found median {p50:.3f} (p10 {p10:.3f}, p90 {p90:.3f})"
        if self.status is not None:
            parts = {
                "certified": "certified robust",
                "undecided": "undecided",
                "adversarial": "adversarial found",
            }
            shares = ", ".join(f"{parts[s]} {100 * v:.1f}%" for s, v in self.fractions().items())
            text += f"; at eps={self.eps:g}: {shares}"
        return text

    def __repr__(self) -> str:
        return self.summary()


def robustness_bracket(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    norm: str = "l2",
    method: str = "crown",
    attacks: Any = "default",
    eps: float | None = None,
    budget: Any = None,
    clip: tuple[float, float] | None = None,
    seed: int = 0,
    batch_size: int = 256,
    rtol: float | None = None,
    max_memory: int | None = None,
) -> RobustnessBracket:
    """Bracket each input's minimal adversarial perturbation from both sides.

    ``certified`` comes from `certified_radius` (a lower bound: nothing
    smaller changes the label), ``found`` from `minimal_perturbation` (an upper
    bound: a verified perturbation that does), so::

        certified_n  <=  ||r*_n||  <=  found_n,      ratio_n = certified_n / found_n

    A ratio near 1 means the true minimum is known; a small one means the
    bound is loose, the attacks weak, or both. ``certified > found`` anywhere
    is impossible and means a bug on one side: it raises. At ``eps`` (input
    units) each input is ``"certified"`` (robust, proved), ``"adversarial"``
    (a perturbation that small was found) or ``"undecided"``; the summary line
    (`RobustnessBracket.summary`, also its ``repr``) gives their shares.

    Args:
        model: a Keras classifier the bounds support (see `certified_radius`).
        x: inputs.
        y: optional labels (N,) or one-hot rows (misclassified: 0 on both sides).
        norm: ``"l2"`` or ``"linf"``.
        method: the bound: ``"lipschitz"``, ``"ibp"`` or ``"crown"``.
        attacks: ``"default"`` (the ensemble's default for ``norm``) or what
            `minimal_perturbation` takes.
        eps: optional radius of the three-way status, in input units.
        budget: passed to `minimal_perturbation`.
        clip: passed to `minimal_perturbation` (it restricts the attacks; the
            certificate covers the whole ball, so it holds with any ``clip``).
        seed: passed to `minimal_perturbation`.
        batch_size: passed to `minimal_perturbation`.
        rtol: passed to `certified_radius`.
        max_memory: passed to `certified_radius`.

    Returns:
        A `RobustnessBracket`.

    Raises:
        RuntimeError: ``certified > found`` on some input (beyond float32
            rounding, ``1e-4`` relative), naming the input and both values.
        ValueError: bad arguments (as the two functions raise them), a negative
            ``eps``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import robustness_bracket
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> x = np.array([[3.0, 4.0], [1.0, 4.0]])  # 3 and 1 from the boundary x_0 = 0
    >>> res = robustness_bracket(model, x, eps=2.0, attacks=["deepfool"])
    >>> print(np.round(res.ratio, 2), *res.status)  # DeepFool overshoots by 2 %
    [0.98 0.98] certified adversarial
    """
    if eps is not None:
        eps = check_float("eps", eps, minimum=0.0)
    start = time.perf_counter()
    certified = certified_radius(
        model, x, y, norm=norm, method=method, rtol=rtol, max_memory=max_memory
    )
    middle = time.perf_counter()
    found = minimal_perturbation(
        model,
        x,
        y,
        norm=norm,
        attacks=None if attacks == "default" else attacks,
        budget=budget,
        clip=clip,
        seed=seed,
        batch_size=batch_size,
        verbose=0,
    )
    end = time.perf_counter()
    low, high = certified.distance, np.asarray(found.distance, "float64")
    bad = np.flatnonzero(low > high * (1 + TOLERANCE) + 1e-12)
    if bad.size:
        i = int(bad[0])
        raise RuntimeError(
            f"certified radius exceeds the verified perturbation on input {i}: certified "
            f"{low[i]:.6g} > found {high[i]:.6g} ({norm}, input units; {bad.size} input(s) in "
            f"all). One side is wrong: the {method!r} bound or the attack's verification."
        )
    ratio = bracket_ratios(low, high)
    status = None
    if eps is not None:
        status = np.where(low > eps, "certified", np.where(high <= eps, "adversarial", "undecided"))
    return RobustnessBracket(
        certified=certified.per_sample,
        found=np.asarray(found.per_sample, "float64"),
        ratio=ratio,
        certified_distance=low,
        found_distance=high,
        status=status,
        eps=eps,
        labels=certified.labels,
        predictions=certified.predictions,
        method=certified.method,
        norm=certified.norm,
        certified_result=certified,
        found_result=found,
        seconds={"certify": middle - start, "attack": end - middle},
    )
