"""What every figure of `keras_lpc.plotting` shares: the Figure grid, colours, saving.

Figures are built without `matplotlib.pyplot` and saved through the Agg
canvas; matplotlib is imported when a figure is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keras_lpc._validation import require

INFORMATION_NAMES = ("entropy", "mutual_information", "interaction_information")
TITLES = {
    "gamma": "gamma (penalty weight)",
    "accuracy": "training accuracy",
    "val_accuracy": "validation accuracy",
    "loss": "training loss",
    "val_nc1": "NC1 (within / between class)",
    "val_separation_ratio": "class-separation ratio",
    "val_deepfool": "DeepFool score ||r|| / ||x||",
    "val_entropy": "entropy of z (nats)",
    "val_mutual_information": "I(z; y) (nats)",
    "val_interaction_information": "synergy II (nats)",
}


def figure(panels: int = 1, columns: int = 3, panel_size: float = 3.6) -> Any:
    """A Figure with a grid of ``panels`` Axes (row-major); unused cells removed."""
    Figure = require("matplotlib.figure", "plot", "keras_lpc.plotting").Figure
    cols = max(1, min(columns, panels))
    if panels == 4 and columns == 3:
        cols = 2  # a 2 x 2 grid rather than 3 + 1
    rows = -(-panels // cols)
    size = (panel_size * cols + 0.6, panel_size * 0.8 * rows + 0.6)
    fig = Figure(figsize=size, layout="constrained")
    for i in range(panels):
        fig.add_subplot(rows, cols, i + 1)
    return fig


def axes_or_new(ax: Any) -> tuple[Any, Any]:
    if ax is None:
        fig = figure(1, panel_size=5.0)
        return fig, fig.axes[0]
    return ax.figure, ax


def finish(fig: Any, path: str | Path | None) -> Any:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
        fig.savefig(path, dpi=110)
    return fig


def series(name: str, value: Any) -> np.ndarray:
    """A 1-d float series (NaN allowed: a plot skips it)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be an array of real numbers. Received: {name} of type "
            f"{type(value).__name__}"
        ) from None
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-d array. Received: {name} with shape {arr.shape}")
    return arr


def palette(k: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]


def plot_measured(ax: Any, x: np.ndarray, values: np.ndarray, colour: Any, label: str) -> None:
    """Draw the finite points of a series, joined; markers where the points are sparse.

    NaN marks an epoch that was not measured (a metric callback's off-epochs) or a
    failed measurement: it is skipped, so the measured points are joined by one line.
    A series with gaps (points more than one epoch apart) or fewer than 25 points
    gets markers, so that every point, even a single one, is visible.
    """
    ok = np.isfinite(values)
    x, values = x[ok], values[ok]
    sparse = len(x) < 25 or bool(np.any(np.diff(x) > 1))
    marker = {"marker": "o", "markersize": 3 if len(x) >= 25 else 4} if sparse else {}
    ax.plot(x, values, color=colour, label=label, **marker)
