"""Figures of a run against time or against gamma: training curves, tuning objective."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_lpc._validation import check_choice, epoch_positions
from keras_lpc.plotting._base import (
    TITLES,
    axes_or_new,
    figure,
    finish,
    palette,
    plot_measured,
    series,
)

__all__ = ["TRAINING_KEYS", "plot_objective_vs_gamma", "plot_training_curves"]

TRAINING_KEYS = ("gamma", "accuracy", "val_nc1", "val_separation_ratio", "val_deepfool")


def plot_training_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    keys: Sequence[str] = TRAINING_KEYS,
    path: str | Path | None = None,
) -> Any:
    """Plot metrics against epoch, one panel per key, one line per model.

    Args:
        histories: model name -> `History.history` dict (key -> per-epoch
            values), e.g. ``{"baseline": h0.history, "lpc": h1.history}``.
        keys: the keys to draw, in order; a key that no history holds is
            skipped. ``gamma`` is drawn on a log scale. NaN values (the
            epochs a metric callback with ``every > 1`` did not measure) are
            skipped and the measured points joined, with markers when they
            are sparse. A series shorter than the run (a key logged only on
            the epochs measured) is placed at epochs k, 2k, ... with
            k = (longest series of that history) // (its length).
        path: where to write the PNG (optional).

    Returns:
        The `matplotlib.figure.Figure` (one Axes per drawn key).

    Raises:
        TypeError: if ``histories`` is not a mapping.
        ValueError: if it is empty or holds none of ``keys``.

    Example:

    >>> fig = plot_training_curves({
    ...     "baseline": {"accuracy": [0.5, 0.8, 0.9]},
    ...     "lpc": {"accuracy": [0.4, 0.8, 0.95], "gamma": [1e-4, 1e-2, 1.0]},
    ... })
    >>> tuple(ax.get_title() for ax in fig.axes)
    ('gamma (penalty weight)', 'training accuracy')
    >>> len(fig.axes[1].get_lines())
    2
    >>> nan = float("nan")  # measured at epochs 1 and 3 only
    >>> line = plot_training_curves({"lpc": {"val_nc1": [0.9, nan, 0.5]}}).axes[0].lines[0]
    >>> line.get_xdata().tolist(), line.get_ydata().tolist(), line.get_marker()
    ([1, 3], [0.9, 0.5], 'o')
    """
    if not isinstance(histories, Mapping):
        raise TypeError(
            "`histories` must be a dict of model name -> History.history dict. "
            f"Received: histories of type {type(histories).__name__}"
        )
    drawn = [k for k in keys if any(k in h for h in histories.values())]
    if not drawn:
        raise ValueError(
            f"`histories` must hold at least one of the keys {tuple(keys)}. "
            f"Received: histories with keys {sorted({k for h in histories.values() for k in h})}"
        )
    fig = figure(len(drawn))
    colours = palette(len(histories))
    for ax, key in zip(fig.axes, drawn):
        for colour, (model, history) in zip(colours, histories.items()):
            if key in history:
                values = np.asarray(history[key], dtype=np.float64).reshape(-1)
                epochs = max(len(v) for v in history.values())
                plot_measured(ax, epoch_positions(len(values), epochs), values, colour, model)
        if key == "gamma":
            ax.set_yscale("log")
        ax.set_title(TITLES.get(key, key), fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return finish(fig, path)


def plot_objective_vs_gamma(
    gammas: Any,
    objectives: Any,
    path: str | Path | None = None,
    ax: Any = None,
    objective_name: str = "objective",
    direction: str = "max",
) -> Any:
    """Plot a tuning objective against gamma on a log axis and mark the best trial.

    Args:
        gammas: gamma of each trial (N,), all > 0.
        objectives: the objective of each trial (N,).
        path: where to write the PNG (optional).
        ax: draw on this Axes instead of a new figure.
        objective_name: y-axis label.
        direction: ``"max"`` or ``"min"``: which value is best.

    Returns:
        The Figure: the trials (sorted by gamma) as a line with markers, the
        best trial as a star, the best gamma in the title.

    Raises:
        ValueError: if lengths differ, a gamma is not positive or ``direction``
            is unknown.

    Example:

    >>> fig = plot_objective_vs_gamma([1e2, 1e4, 1e6], [0.9, 0.95, 0.5])
    >>> fig.axes[0].get_title()
    'best objective 0.95 at gamma = 1e+04'
    """
    direction = check_choice("direction", direction, ("max", "min"))
    g = series("gammas", gammas)
    o = series("objectives", objectives)
    if len(g) != len(o) or len(g) == 0:
        raise ValueError(
            f"`objectives` must have one value per gamma ({len(g)}). "
            f"Received: objectives with {len(o)}"
        )
    if np.any(~(g > 0)):
        raise ValueError(f"`gammas` must all be > 0 (log axis). Received: gammas={g.tolist()}")
    order = np.argsort(g)
    best = int(np.nanargmax(o) if direction == "max" else np.nanargmin(o))
    fig, ax = axes_or_new(ax)
    ax.plot(g[order], o[order], marker="o", color="tab:blue", label="trials")
    ax.scatter([g[best]], [o[best]], marker="*", s=180, color="tab:orange", zorder=3, label="best")
    ax.set_xscale("log")
    ax.set_xlabel("gamma")
    ax.set_ylabel(objective_name)
    ax.set_title(f"best {objective_name} {o[best]:.4g} at gamma = {g[best]:.3g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return finish(fig, path)
