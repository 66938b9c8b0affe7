"""Figures of the latent space: per-dimension histograms (binary encoding), 2-d scatter."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_lpc._validation import as_labels, as_latents, check_int
from keras_lpc.metrics._stats import class_means
from keras_lpc.plotting._base import axes_or_new, figure, finish, palette

__all__ = ["plot_latent_histograms", "plot_latents_2d"]


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
    colours = palette(len(groups))
    fig = figure(len(dims), columns=4, panel_size=3.0)
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
    return finish(fig, path)


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
    fig, ax = axes_or_new(ax)
    _, means = class_means(z, codes.reshape(-1), len(classes))
    for colour, c in zip(palette(len(classes)), classes):
        mask = labels == c
        ax.scatter(z[mask, 0], z[mask, 1], s=8, alpha=0.6, color=colour, label=f"class {c}")
    ax.scatter(means[:, 0], means[:, 1], marker="x", s=60, color="black", label="class mean")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title("2-d latents")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=7, ncol=2 if len(classes) > 5 else 1)
    return finish(fig, path)
