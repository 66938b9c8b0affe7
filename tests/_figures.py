"""Checks on drawn matplotlib figures: does every panel show data?"""

from __future__ import annotations

import numpy as np


def visible_points(line) -> int:
    """Finite points of a `Line2D` that are seen: all with a marker, else those on a segment.

    Without a marker matplotlib draws only segments between two consecutive
    finite points; an isolated finite point (NaN on both sides) is invisible.
    """
    y = np.asarray(line.get_ydata(), dtype=np.float64)
    x = np.asarray(line.get_xdata(), dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    if line.get_marker() not in (None, "None", "", " ", "none"):
        return int(finite.sum())
    joined = finite[:-1] & finite[1:]
    on_segment = np.zeros_like(finite)
    on_segment[:-1] |= joined
    on_segment[1:] |= joined
    return int(on_segment.sum())


def panel_data(ax) -> int:
    """How many data points or filled areas an Axes shows (lines, scatters, histograms)."""
    points = sum(visible_points(line) for line in ax.get_lines())
    for collection in ax.collections:
        offsets = np.asarray(collection.get_offsets(), dtype=np.float64).reshape(-1, 2)
        points += int(np.isfinite(offsets).all(axis=1).sum())
    for patch in ax.patches:
        heights = patch.get_path().vertices[:, 1]
        points += int(np.ptp(heights[np.isfinite(heights)]) > 0)
    return points


def empty_panels(fig) -> list[str]:
    """Titles (or indices) of the Axes of ``fig`` that show no data."""
    return [ax.get_title() or str(i) for i, ax in enumerate(fig.axes) if panel_data(ax) == 0]
