"""keras_lpc.plotting.information: information metrics against epoch beside gamma."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from keras_lpc import plotting  # noqa: E402
from keras_lpc.callbacks import plot_information  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_information_panels_with_gamma_twin(tmp_path):
    history = {
        "gamma": [1e-4, 1e-3, 1e-2, 1e-1],
        "val_entropy": [3.0, 2.0],  # logged every 2 epochs: at epochs 2 and 4
        "val_mutual_information": [1.0, 1.5, 2.0, 2.2],
    }
    fig = plotting.plot_information(history, path=tmp_path / "i.png")
    _assert_png(tmp_path / "i.png")
    assert len(fig.axes) == 4  # 2 panels, each with a gamma twin
    entropy = fig.axes[0].get_lines()[0]
    np.testing.assert_array_equal(entropy.get_xdata(), [2, 4])
    assert [ax.get_yscale() for ax in fig.axes[2:]] == ["log", "log"]
    with pytest.raises(ValueError, match=r"`history` must hold at least one of the keys"):
        plotting.plot_information({"gamma": [1.0]})


def test_plot_information(tmp_path):
    logs = {"val_entropy": [1.0, np.nan, 0.5], "val_mutual_information": [0.1, 0.2, 0.3]}
    fig = plot_information({**logs, "gamma": [1e-3, 1e-2, 1e-1]}, path=str(tmp_path / "a.png"))
    assert (tmp_path / "a.png").stat().st_size > 0
    assert len(fig.axes) == 4  # two drawn keys, each with its gamma twin
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), [1, 3])  # the NaN epoch is skipped
    with pytest.raises(ValueError, match=r"`history` must hold"):
        plot_information({"loss": [1.0]})


def test_plot_information_places_sparse_values_at_their_epochs():
    # History keeps only the logged epochs: 2 values over 6 epochs -> epochs 3 and 6.
    fig = plot_information({"loss": [1.0] * 6, "val_entropy": [0.4, 0.2]})
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), [3, 6])
    fig = plot_information({"val_entropy": [0.4, 0.2]}, every=10)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), [10, 20])
    with pytest.raises(ValueError, match=r"`every` must be an integer >= 1. Received: every=0"):
        plot_information({"val_entropy": [0.4]}, every=0)
