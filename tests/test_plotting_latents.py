"""keras_lpc.plotting.latents: per-dimension histograms stacked by class, 2-d latents."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from keras_lpc import plotting  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


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
