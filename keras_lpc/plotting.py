"""Matplotlib figures for LPC runs: training curves, binary encoding, robustness.

Every function takes arrays or `History.history` dicts, draws on a new
`matplotlib.figure.Figure` (or on the given ``ax``), saves a PNG when
``path`` is given and returns the Figure. Figures are built without
`matplotlib.pyplot` and saved through the Agg canvas, so nothing here needs a
display or changes pyplot's global state. Matplotlib is imported when a
function is called (extra: ``pip install keras-lpc[plot]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_lpc._validation import as_labels, as_latents, check_int, epoch_positions, require
from keras_lpc.metrics._stats import class_means

__all__ = [
    "TRAINING_KEYS",
    "INFORMATION_KEYS",
    "pearson_r",
    "plot_information",
    "plot_latent_histograms",
    "plot_latents_2d",
    "plot_objective_vs_gamma",
    "plot_separation_vs_robustness",
    "plot_training_curves",
]

TRAINING_KEYS = ("gamma", "accuracy", "val_nc1", "val_separation_ratio", "val_deepfool")
_INFORMATION_NAMES = ("entropy", "mutual_information", "interaction_information")
INFORMATION_KEYS = tuple("val_" + name for name in _INFORMATION_NAMES)
_TITLES = {
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


def _figure(panels: int = 1, columns: int = 3, panel_size: float = 3.6) -> Any:
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


def _axes_or_new(ax: Any) -> tuple[Any, Any]:
    if ax is None:
        fig = _figure(1, panel_size=5.0)
        return fig, fig.axes[0]
    return ax.figure, ax


def _finish(fig: Any, path: str | Path | None) -> Any:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
        fig.savefig(path, dpi=110)
    return fig


def _series(name: str, value: Any) -> np.ndarray:
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


def _colours(k: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if k <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(k)]


def _plot_measured(ax: Any, x: np.ndarray, values: np.ndarray, colour: Any, label: str) -> None:
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
    fig = _figure(len(drawn))
    colours = _colours(len(histories))
    for ax, key in zip(fig.axes, drawn):
        for colour, (model, history) in zip(colours, histories.items()):
            if key in history:
                values = np.asarray(history[key], dtype=np.float64).reshape(-1)
                epochs = max(len(v) for v in history.values())
                _plot_measured(ax, epoch_positions(len(values), epochs), values, colour, model)
        if key == "gamma":
            ax.set_yscale("log")
        ax.set_title(_TITLES.get(key, key), fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _finish(fig, path)


def plot_latent_histograms(
    z: Any,
    labels: Any = None,
    dims: Sequence[int] | int | None = None,
    path: str | Path | None = None,
    bins: int = 40,
) -> Any:
    """Histogram of each latent dimension, stacked by class (the papers' Fig. 2).

    After latent point collapse on a low-dimensional linear layer, each
    dimension becomes bimodal: class points sit near +-r on every axis (a
    "binary encoding"), which shows here as two separated peaks per panel.

    Args:
        z: latents, shape (N, d).
        labels: class of each sample (N,), used for colours; optional.
        dims: dimensions to draw: indices, or an int k for the first k.
            Default: the first ``min(d, 16)``.
        path: where to write the PNG (optional).
        bins: histogram bins per panel.

    Returns:
        The Figure, one Axes per drawn dimension.

    Raises:
        ValueError: if ``z`` is not 2-d, ``labels`` has the wrong length or a
            dimension index is out of range.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> z = np.sign(rng.standard_normal((200, 3))) + 0.1 * rng.standard_normal((200, 3))
    >>> fig = plot_latent_histograms(z, labels=rng.integers(0, 2, 200))
    >>> len(fig.axes), len(fig.axes[0].patches)  # 3 panels, one filled area per class
    (3, 2)
    """
    z = as_latents(z)
    d = z.shape[1]
    bins = check_int("bins", bins, minimum=1)
    if dims is None:
        dims = list(range(min(d, 16)))
    elif isinstance(dims, int | np.integer):
        dims = list(range(min(check_int("dims", dims, minimum=1), d)))
    dims = [int(i) for i in dims]
    if not dims or any(i < 0 or i >= d for i in dims):
        raise ValueError(
            f"`dims` must be indices in [0, {d}) (z has {d} dimensions). Received: dims={dims}"
        )
    if labels is None:
        groups = [(None, np.ones(len(z), bool))]
    else:
        labels = as_labels(labels, len(z), integer=False)
        groups = [(c, labels == c) for c in np.unique(labels)]
    colours = _colours(len(groups))
    fig = _figure(len(dims), columns=4, panel_size=3.0)
    for ax, i in zip(fig.axes, dims):
        edges = np.histogram_bin_edges(z[:, i], bins=bins)
        data = [z[mask, i] for _, mask in groups]
        names = ["all" if c is None else f"class {c}" for c, _ in groups]
        ax.hist(data, bins=edges, stacked=True, histtype="stepfilled", color=colours, label=names)
        ax.set_title(f"z[{i}]", fontsize=10)
        ax.set_xlabel("value")
        ax.set_ylabel("count")
    if labels is not None and len(groups) <= 20:
        handles, names = fig.axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside right upper", fontsize=8)
    fig.suptitle("Per-dimension latent histograms (stacked by class)")
    return _finish(fig, path)


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
    x = _series("x", x)
    y = _series("y", y)
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
    fig, ax = _axes_or_new(ax)
    if labels is None:
        ax.scatter(x, y, s=24, color=_colours(1)[0])
    else:
        labels = as_labels(labels, len(x), integer=False, of="separation")
        groups = list(dict.fromkeys(labels.tolist()))
        for colour, group in zip(_colours(len(groups)), groups):
            mask = labels == group
            ax.scatter(x[mask], y[mask], s=24, color=colour, label=str(group))
        ax.legend(fontsize=8)
    ax.set_xlabel("class-separation ratio")
    ax.set_ylabel(ylabel)
    ax.set_title(f"Pearson r = {r:.3f} (N = {len(x)})")
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def plot_latents_2d(z: Any, labels: Any, path: str | Path | None = None, ax: Any = None) -> Any:
    """Scatter 2-d latents coloured by class, class means marked with crosses.

    Args:
        z: latents of a 2-unit bottleneck, shape (N, 2).
        labels: class of each sample (N,).
        path: where to write the PNG (optional).
        ax: draw on this Axes instead of a new figure.

    Returns:
        The Figure: one scatter collection per class plus one for the means.

    Raises:
        ValueError: if ``z`` is not of shape (N, 2) or ``labels`` has the wrong length.

    Example:

    >>> z = np.array([[1.0, 1.0], [1.1, 0.9], [-1.0, -1.0], [-0.9, -1.1]])
    >>> fig = plot_latents_2d(z, [0, 0, 1, 1])
    >>> len(fig.axes[0].collections)
    3
    """
    z = as_latents(z)
    if z.shape[1] != 2:
        raise ValueError(
            f"`z` must have exactly 2 columns (a 2-d bottleneck). Received: z with shape {z.shape}"
        )
    labels = as_labels(labels, len(z), integer=False)
    classes, codes = np.unique(labels, return_inverse=True)
    fig, ax = _axes_or_new(ax)
    _, means = class_means(z, codes.reshape(-1), len(classes))
    for colour, c in zip(_colours(len(classes)), classes):
        mask = labels == c
        ax.scatter(z[mask, 0], z[mask, 1], s=8, alpha=0.6, color=colour, label=f"class {c}")
    ax.scatter(means[:, 0], means[:, 1], marker="x", s=60, color="black", label="class mean")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title("2-d latents")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=7, ncol=2 if len(classes) > 5 else 1)
    return _finish(fig, path)


def plot_information(
    history: Any,
    path: str | Path | None = None,
    keys: Sequence[str] | None = None,
    *,
    prefix: str = "val_",
    gamma_key: str = "gamma",
    every: int | None = None,
) -> Any:
    """Plot the information metrics against epoch, each next to gamma (the GIB's phase picture).

    One panel per drawn key (entropy, mutual information, interaction
    information, in nats), and, when the history holds ``gamma_key``
    (written by `keras_lpc.GammaAnnealing`), gamma in red on a twin
    log-scale right axis of each panel, so compression phases can be read
    against the penalty schedule. `keras.callbacks.History` keeps a value
    only for the epochs where it was logged: value ``i`` of a key is drawn
    at epoch ``(i + 1) * every``. NaN values are skipped.

    Args:
        history: a `keras.callbacks.History` or its ``.history`` dict.
        path: where to write the image (optional; PNG, PDF...).
        keys: the keys to draw, in order (``None``: ``prefix`` followed by
            ``entropy``, ``mutual_information``, ``interaction_information``,
            the names `InformationMetrics` logs); missing ones are skipped.
        prefix: the prefix used by `InformationMetrics` (for ``keys=None``).
        gamma_key: name of gamma in the history.
        every: epochs between two values (the callback's ``every``);
            ``None``: the longest series of ``history`` (e.g. ``loss`` or
            gamma, logged every epoch) divided by the number of values.

    Returns:
        The Figure: one panel (plus its gamma twin) per drawn key.

    Raises:
        ImportError: matplotlib is missing (``pip install keras-lpc[plot]``).
        TypeError: ``history`` is neither a `History` nor a dict.
        ValueError: ``history`` holds none of ``keys``; ``every < 1``.

    Example:

    >>> fig = plot_information({"val_entropy": [2.0, 1.5, 1.2], "gamma": [1e-3, 1e-1, 10.0]})
    >>> len(fig.axes), fig.axes[1].get_yscale()
    (2, 'log')
    >>> fig = plot_information({"loss": [1.0] * 6, "val_entropy": [0.4, 0.2]})
    >>> fig.axes[0].lines[0].get_xdata().tolist()  # logged every 3 epochs
    [3, 6]
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        raise TypeError(
            f"`history` must be a History or its .history dict. Received: history of type "
            f"{type(history).__name__}"
        )
    if keys is None:
        keys = tuple(prefix + name for name in _INFORMATION_NAMES)
    if every is not None:
        every = check_int("every", every, minimum=1)
    drawn = [k for k in keys if k in logs]
    if not drawn:
        raise ValueError(
            f"`history` must hold at least one of the keys {tuple(keys)}. "
            f"Received: history with keys {sorted(logs)}"
        )
    fig = _figure(len(drawn), panel_size=4.0)
    gamma = np.asarray(logs.get(gamma_key, []), dtype=np.float64).reshape(-1)
    epochs = max(len(v) for v in logs.values())
    for ax, key in zip(list(fig.axes), drawn):
        values = np.asarray(logs[key], dtype=np.float64).reshape(-1)
        x = epoch_positions(len(values), epochs, every)
        ok = np.isfinite(values)
        ax.plot(x[ok], values[ok], marker="o", markersize=3, color="tab:blue", label=key)
        ax.set_title(_TITLES.get(key, key), fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats", color="tab:blue")
        ax.grid(alpha=0.3)
        if gamma.size:
            twin = ax.twinx()
            twin.plot(np.arange(1, len(gamma) + 1), np.maximum(gamma, 1e-12), color="tab:red")
            twin.set_yscale("log")
            twin.set_ylabel("gamma", color="tab:red")
    return _finish(fig, path)


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
    from keras_lpc._validation import check_choice

    direction = check_choice("direction", direction, ("max", "min"))
    g = _series("gammas", gammas)
    o = _series("objectives", objectives)
    if len(g) != len(o) or len(g) == 0:
        raise ValueError(
            f"`objectives` must have one value per gamma ({len(g)}). "
            f"Received: objectives with {len(o)}"
        )
    if np.any(~(g > 0)):
        raise ValueError(f"`gammas` must all be > 0 (log axis). Received: gammas={g.tolist()}")
    order = np.argsort(g)
    best = int(np.nanargmax(o) if direction == "max" else np.nanargmin(o))
    fig, ax = _axes_or_new(ax)
    ax.plot(g[order], o[order], marker="o", color="tab:blue", label="trials")
    ax.scatter([g[best]], [o[best]], marker="*", s=180, color="tab:orange", zorder=3, label="best")
    ax.set_xscale("log")
    ax.set_xlabel("gamma")
    ax.set_ylabel(objective_name)
    ax.set_title(f"best {objective_name} {o[best]:.4g} at gamma = {g[best]:.3g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)
