"""Robustness against class separation across runs, with Pearson's r (the papers' Fig. 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keras_lpc._validation import as_labels
from keras_lpc.plotting._base import axes_or_new, finish, palette, series

__all__ = ["pearson_r", "plot_separation_vs_robustness"]


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
