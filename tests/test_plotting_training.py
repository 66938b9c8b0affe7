"""keras_lpc.plotting.training: training curves (NaN-filled, sparse, every panel drawn) and
the tuning objective against gamma."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from _figures import empty_panels, visible_points  # noqa: E402

from keras_lpc import plotting  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def _history(epochs, scale):
    e = np.arange(1, epochs + 1)
    return {
        "gamma": (1e-4 * 2.0**e).tolist(),
        "accuracy": (1 - 0.5 / e).tolist(),
        "val_nc1": (scale / e).tolist(),
        "val_separation_ratio": (1 + scale * e).tolist(),
    }


def test_training_curves_one_panel_per_present_key(tmp_path):
    histories = {"baseline": _history(10, 0.1), "lpc": _history(10, 0.5)}
    del histories["baseline"]["gamma"]  # the baseline logs no gamma
    fig = plotting.plot_training_curves(histories, path=tmp_path / "curves.png")
    _assert_png(tmp_path / "curves.png")
    # val_deepfool is in neither history: skipped, 4 panels remain.
    assert len(fig.axes) == 4
    gamma_ax, accuracy_ax = fig.axes[0], fig.axes[1]
    assert gamma_ax.get_yscale() == "log" and len(gamma_ax.get_lines()) == 1
    assert len(accuracy_ax.get_lines()) == 2
    np.testing.assert_allclose(accuracy_ax.get_lines()[1].get_ydata(), histories["lpc"]["accuracy"])
    assert [t.get_text() for t in accuracy_ax.get_legend().get_texts()] == ["baseline", "lpc"]


def test_training_curves_place_sparse_metrics_at_every_kth_epoch():
    history = _history(10, 0.1) | {"val_deepfool": [0.1, 0.2]}  # every=5
    fig = plotting.plot_training_curves({"lpc": history}, keys=("accuracy", "val_deepfool"))
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), np.arange(1, 11))
    np.testing.assert_array_equal(fig.axes[1].get_lines()[0].get_xdata(), [5, 10])


def test_training_curves_draw_every_measured_point_of_a_nan_filled_series():
    # the metric callbacks with every=5 log NaN on the four epochs between two measurements
    nan = float("nan")
    values = ([0.9] + [nan] * 4) * 6
    fig = plotting.plot_training_curves({"m": {"val_nc1": values}})
    assert empty_panels(fig) == []
    line = fig.axes[0].lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [1, 6, 11, 16, 21, 26])
    np.testing.assert_array_equal(line.get_ydata(), [0.9] * 6)
    assert line.get_marker() == "o" and visible_points(line) == 6


def test_training_curves_every_panel_has_data_for_the_callbacks_logs():
    # 60 epochs as the demo logs them: gamma and accuracy every epoch, NC1 and the
    # separation ratio at epochs 1, 5, 10, ..., 60, DeepFool at 1, 20, 40, 60
    nan = float("nan")
    epochs = np.arange(1, 61)

    def every(k, value):
        return [value(e) if e == 1 or e % k == 0 else nan for e in epochs]

    history = {
        "loss": (1.0 / epochs).tolist(),
        "gamma": (1e-3 * epochs**2).tolist(),
        "accuracy": (1 - 0.5 / epochs).tolist(),
        "val_nc1": every(5, lambda e: 1.0 / e),
        "val_separation_ratio": every(5, lambda e: 1.0 + e / 10),
        "val_deepfool": every(20, lambda e: 0.1 + e / 1000),
    }
    baseline = {k: v for k, v in history.items() if k != "gamma"}
    fig = plotting.plot_training_curves({"baseline": baseline, "lpc": history})
    assert len(fig.axes) == 5 and empty_panels(fig) == []
    deepfool = fig.axes[4].lines[1]
    np.testing.assert_array_equal(deepfool.get_xdata(), [1, 20, 40, 60])
    np.testing.assert_allclose(deepfool.get_ydata(), [0.101, 0.12, 0.14, 0.16])
    nc1 = fig.axes[2].lines[0]
    assert visible_points(nc1) == 13 and nc1.get_marker() == "o"
    # a dense series (every epoch measured, >= 25 points) is a plain line
    assert fig.axes[1].lines[0].get_marker() == "None"
    assert visible_points(fig.axes[1].lines[0]) == 60


def test_training_curves_skip_failed_measurements_and_all_nan_series():
    nan = float("nan")
    fig = plotting.plot_training_curves(
        {"a": {"val_nc1": [0.5, nan, 0.3, 0.2]}, "b": {"val_nc1": [nan] * 4}}
    )
    a, b = fig.axes[0].lines
    np.testing.assert_array_equal(a.get_xdata(), [1, 3, 4])
    assert len(b.get_xdata()) == 0  # nothing measured: an empty line, still in the legend
    assert empty_panels(fig) == []


def test_training_curves_bad_input():
    with pytest.raises(TypeError, match=r"`histories` must be a dict.*Received: histories of type"):
        plotting.plot_training_curves([1, 2])
    with pytest.raises(ValueError, match=r"must hold at least one of the keys.*\['loss'\]"):
        plotting.plot_training_curves({"a": {"loss": [1.0]}})


def test_objective_vs_gamma_marks_best(tmp_path):
    gammas, objectives = [1e6, 1e2, 1e4], [0.5, 0.9, 0.95]
    fig = plotting.plot_objective_vs_gamma(gammas, objectives, path=tmp_path / "o.png")
    _assert_png(tmp_path / "o.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1e2, 1e4, 1e6])
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), [[1e4, 0.95]])
    fig = plotting.plot_objective_vs_gamma(gammas, objectives, direction="min")
    assert fig.axes[0].get_title() == "best objective 0.5 at gamma = 1e+06"
    with pytest.raises(ValueError, match=r"`gammas` must all be > 0"):
        plotting.plot_objective_vs_gamma([0.0, 1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"`direction` must be one of 'max', 'min'"):
        plotting.plot_objective_vs_gamma([1.0], [1.0], direction="up")
