"""Information metrics against epoch, each next to gamma (the GIB's phase picture)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keras_lpc._validation import check_int, epoch_positions
from keras_lpc.plotting._base import INFORMATION_NAMES, TITLES, figure, finish

__all__ = ["INFORMATION_KEYS", "plot_information"]

INFORMATION_KEYS = tuple("val_" + name for name in INFORMATION_NAMES)


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
        keys = tuple(prefix + name for name in INFORMATION_NAMES)
    if every is not None:
        every = check_int("every", every, minimum=1)
    drawn = [k for k in keys if k in logs]
    if not drawn:
        raise ValueError(
            f"`history` must hold at least one of the keys {tuple(keys)}. "
            f"Received: history with keys {sorted(logs)}"
        )
    fig = figure(len(drawn), panel_size=4.0)
    gamma = np.asarray(logs.get(gamma_key, []), dtype=np.float64).reshape(-1)
    epochs = max(len(v) for v in logs.values())
    for ax, key in zip(list(fig.axes), drawn):
        values = np.asarray(logs[key], dtype=np.float64).reshape(-1)
        x = epoch_positions(len(values), epochs, every)
        ok = np.isfinite(values)
        ax.plot(x[ok], values[ok], marker="o", markersize=3, color="tab:blue", label=key)
        ax.set_title(TITLES.get(key, key), fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats", color="tab:blue")
        ax.grid(alpha=0.3)
        if gamma.size:
            twin = ax.twinx()
            twin.plot(np.arange(1, len(gamma) + 1), np.maximum(gamma, 1e-12), color="tab:red")
            twin.set_yscale("log")
            twin.set_ylabel("gamma", color="tab:red")
    return finish(fig, path)
