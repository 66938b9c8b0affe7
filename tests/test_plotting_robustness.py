"""keras_lpc.plotting.robustness: robustness against separation, Pearson's r by hand."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from keras_lpc import plotting  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


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
