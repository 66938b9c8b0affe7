"""Robustness against class separation across runs, with Pearson's r (the papers' Fig. 3),
and the per-input robustness bracket (certified below, found above)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keras_lpc._validation import as_labels
from keras_lpc.plotting._base import axes_or_new, finish, palette, series
from keras_lpc.robustness.certify.bracket import median_bracket_ratio

__all__ = ["pearson_r", "plot_bracket", "plot_separation_vs_robustness"]


def pearson_r(x: Any, y: Any) -> float:
    """Pearson correlation coefficient of two equal-length samples.

    Formula: ``r = sum((x - mean x)(y - mean y)) / sqrt(sum((x - mean x)**2) sum((y - mean y)**2))``;
    dimensionless, in [-1, 1]; NaN when either sample is constant.

    Args:
        x: 1-d sample (N >= 2).
        y: 1-d sample of the same length.

    Returns:
        r as a Python float.

    Raises:
        ValueError: if the samples differ in length or have fewer than 2 points.

    Example:

    >>> round(pearson_r([1, 2, 3, 4], [2, 4, 6, 8.5]), 4)
    0.9984
    """
    x = series("x", x)
    y = series("y", y)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(
            f"`y` must have the same length as x (>= 2 points). "
            f"Received: x with {len(x)}, y with {len(y)} points"
        )
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(dx * dx) * np.sum(dy * dy))
    return float(np.sum(dx * dy) / denominator) if denominator > 0 else float("nan")


def plot_separation_vs_robustness(
    separation: Any,
    robustness: Any,
    labels: Any = None,
    path: str | Path | None = None,
    ax: Any = None,
    ylabel: str = "DeepFool score",
) -> Any:
    """Scatter robustness against class-separation ratio, Pearson r in the title (Fig. 3).

    Args:
        separation: separation ratio of each run/epoch (N,).
        robustness: robustness of each point (N,), e.g. the DeepFool score.
        labels: group of each point (N,), e.g. ``"lpc"``/``"baseline"``; optional.
        path: where to write the PNG (optional).
        ax: draw on this Axes instead of a new figure.
        ylabel: label of the y axis.

    Returns:
        The Figure. The title reads ``"Pearson r = <r, 3 decimals> (N = <N>)"``.

    Raises:
        ValueError: if the inputs differ in length or have fewer than 2 points.

    Example:

    >>> fig = plot_separation_vs_robustness([1.0, 2.0, 3.0], [0.1, 0.25, 0.3])
    >>> fig.axes[0].get_title()
    'Pearson r = 0.961 (N = 3)'
    """
    r = pearson_r(separation, robustness)
    x = np.asarray(separation, dtype=np.float64)
    y = np.asarray(robustness, dtype=np.float64)
    fig, ax = axes_or_new(ax)
    if labels is None:
        ax.scatter(x, y, s=24, color=palette(1)[0])
    else:
        labels = as_labels(labels, len(x), integer=False, of="separation")
        groups = list(dict.fromkeys(labels.tolist()))
        for colour, group in zip(palette(len(groups)), groups):
            mask = labels == group
            ax.scatter(x[mask], y[mask], s=24, color=colour, label=str(group))
        ax.legend(fontsize=8)
    ax.set_xlabel("class-separation ratio")
    ax.set_ylabel(ylabel)
    ax.set_title(f"Pearson r = {r:.3f} (N = {len(x)})")
    ax.grid(alpha=0.3)
    return finish(fig, path)


def plot_bracket(
    certified: Any,
    found: Any,
    path: str | Path | None = None,
    ax: Any = None,
    title: str | None = None,
    ylabel: str = "minimal perturbation",
) -> Any:
    """Per input, the certified radius below and the verified distance above, sorted.

    Each input's true minimal perturbation ``||r*||`` lies in the bracket
    ``certified_n <= ||r*_n|| <= found_n`` (`keras_lpc.robustness.robustness_bracket`):
    the inputs are sorted by ``found``, the two sides drawn as lines and the
    bracket shaded. Inputs no attack flipped (``found`` infinite or NaN) are
    left out and counted in the title, which gives the median of
    ``certified_n / found_n`` (1: the truth is pinned down).

    Args:
        certified: (N,) certified radii (same units as ``found``), >= 0.
        found: (N,) verified distances of the attacks.
        path: where to write the PNG (optional).
        ax: draw on this Axes instead of a new figure.
        title: prefix of the title (e.g. the model's name).
        ylabel: label of the y axis (the units).

    Returns:
        The Figure; its title ends with ``"median certified / found = <3 decimals>"``.

    Raises:
        ValueError: if the two differ in length, are empty, or ``certified`` is
            negative or NaN.

    Example:

    >>> fig = plot_bracket([0.5, 0.2, 0.0], [1.0, 0.4, float("inf")], title="lpc")
    >>> fig.axes[0].get_title()
    'lpc: 2 inputs (1 not flipped), median certified / found = 0.500'
    """
    low, high = series("certified", certified), series("found", found)
    if len(low) != len(high) or len(low) == 0:
        raise ValueError(
            "`found` must have one value per input of certified (>= 1 input). "
            f"Received: certified with {len(low)}, found with {len(high)} values"
        )
    if np.isnan(low).any() or (low < 0).any():
        worst = "NaN" if np.isnan(low).any() else repr(float(low.min()))
        raise ValueError(f"`certified` must be >= 0 (not NaN). Received: certified with {worst}")
    keep = np.isfinite(high)
    median = median_bracket_ratio(low, high)
    order = np.argsort(high[keep], kind="stable")
    low, high = low[keep][order], high[keep][order]
    fig, ax = axes_or_new(ax)
    rank = np.arange(len(high))
    upper, lower = palette(2)
    ax.fill_between(rank, low, high, color=upper, alpha=0.15, linewidth=0)
    ax.plot(rank, high, color=upper, label="found (verified attacks): upper bound")
    ax.plot(rank, low, color=lower, label="certified: lower bound")
    ax.set_xlabel("input, sorted by the found distance")
    ax.set_ylabel(ylabel)
    skipped = int((~keep).sum())
    head = f"{title}: " if title else ""
    note = f" ({skipped} not flipped)" if skipped else ""
    ax.set_title(f"{head}{len(high)} inputs{note}, median certified / found = {median:.3f}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return finish(fig, path)
