"""keras_lpc.plotting._base: what every figure shares; without matplotlib, the extra is named."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from keras_lpc import plotting  # noqa: E402


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'keras-lpc\[plot\]'"):
        plotting.plot_latents_2d(np.zeros((2, 2)), [0, 1])
