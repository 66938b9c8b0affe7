"""keras_lpc.plotting: every figure writes a non-empty PNG with the expected panels."""

from __future__ import annotations

import re
import sys

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


def test_latent_histograms_stack_classes(tmp_path, rng):
    z = np.sign(rng.standard_normal((300, 5))) + 0.1 * rng.standard_normal((300, 5))
    labels = rng.integers(0, 3, 300)
    fig = plotting.plot_latent_histograms(z, labels, dims=[0, 2, 4], path=tmp_path / "h.png")
    _assert_png(tmp_path / "h.png")
    assert len(fig.axes) == 3 and [a.get_title() for a in fig.axes] == ["z[0]", "z[2]", "z[4]"]
    # One filled area per class, stacked: the top edge is the histogram of all samples.
    ax = fig.axes[0]
    assert len(ax.patches) == 3
    edges = np.histogram_bin_edges(z[:, 0], bins=40)
    top = max(p.get_path().vertices[:, 1].max() for p in ax.patches)
    assert top == np.histogram(z[:, 0], bins=edges)[0].max()
    # dims=k draws the first k dimensions; no labels gives one container.
    fig = plotting.plot_latent_histograms(z, dims=2)
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 1


def test_latent_histograms_bad_input(rng):
    z = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"`dims` must be indices in \[0, 3\).*dims=\[5\]"):
        plotting.plot_latent_histograms(z, dims=[5])
    with pytest.raises(ValueError, match=r"`z` must be a 2-D array of shape \(N, d\)\. Received"):
        plotting.plot_latent_histograms(z[:, 0])
    with pytest.raises(
        ValueError, match=r"`labels` must be a 1-D array with one label per row of `z` \(10\)"
    ):
        plotting.plot_latent_histograms(z, labels=[0, 1])


def test_separation_vs_robustness_title_is_scipy_pearson(tmp_path, rng):
    from scipy.stats import pearsonr

    separation = rng.uniform(1, 5, 20)
    robustness = 0.1 * separation + rng.normal(0, 0.05, 20)
    groups = np.array(["baseline", "lpc"] * 10)
    fig = plotting.plot_separation_vs_robustness(
        separation, robustness, labels=groups, path=tmp_path / "s.png"
    )
    _assert_png(tmp_path / "s.png")
    title = fig.axes[0].get_title()
    r = float(re.search(r"Pearson r = (-?[0-9.]+)", title).group(1))
    assert r == pytest.approx(pearsonr(separation, robustness).statistic, abs=5e-4)
    assert "(N = 20)" in title
    assert len(fig.axes[0].collections) == 2  # one scatter per group


def test_pearson_r_known_values():
    assert plotting.pearson_r([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert plotting.pearson_r([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # Centred x = (-1, 0, 1), y = (1, -2, 1): covariance 0.
    assert plotting.pearson_r([1, 2, 3], [1, -2, 1]) == pytest.approx(0.0)
    assert np.isnan(plotting.pearson_r([1, 2, 3], [5, 5, 5]))
    with pytest.raises(ValueError, match=r"same length as x \(>= 2 points\)"):
        plotting.pearson_r([1, 2], [1, 2, 3])


def test_latents_2d_scatter_per_class_and_means(tmp_path, rng):
    labels = np.repeat(np.arange(4), 25)
    centres = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], float)
    z = centres[labels] + 0.05 * rng.standard_normal((100, 2))
    fig = plotting.plot_latents_2d(z, labels, path=tmp_path / "z.png")
    _assert_png(tmp_path / "z.png")
    collections = fig.axes[0].collections
    assert len(collections) == 5  # 4 classes + the means
    np.testing.assert_allclose(collections[-1].get_offsets(), centres, atol=0.05)
    with pytest.raises(ValueError, match=r"`z` must have exactly 2 columns.*\(100, 3\)"):
        plotting.plot_latents_2d(np.zeros((100, 3)), labels)


def test_plot_on_given_axes(rng):
    from matplotlib.figure import Figure

    fig = Figure()
    left, right = fig.subplots(1, 2)
    out = plotting.plot_latents_2d(rng.standard_normal((10, 2)), np.arange(10) % 2, ax=right)
    assert out is fig and len(left.collections) == 0 and len(right.collections) == 3


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


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'keras-lpc\[plot\]'"):
        plotting.plot_latents_2d(np.zeros((2, 2)), [0, 1])
