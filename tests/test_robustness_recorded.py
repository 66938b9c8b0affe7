"""Attack results pinned before the robustness core redesign: the same values on every backend.

`tests/data/record_robustness_results.py` recorded them (per backend) with the code before
issue 26's refactor; this test recomputes them with today's code and requires equality to
float32 rounding (relative 1e-5 on distances; accuracies and winners exactly). The
suite's cheap XLA settings (tests/conftest.py) move a few JAX distances by up to 3e-6
relative against the recording made with XLA's defaults, which matched it to 1e-6.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import keras
import numpy as np
import pytest

DATA = pathlib.Path(__file__).with_name("data")
RTOL = 1e-5
_spec = importlib.util.spec_from_file_location(
    "record_robustness_results", DATA / "record_robustness_results.py"
)
recorder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(recorder)


def _curve(fn, model, x, y, eps, **kwargs):
    # today's way to a curve (the recording passed the list to `fn`, now deprecated)
    from keras_lpc.robustness import accuracy_curve

    return accuracy_curve(fn.__name__.split("_")[0], model, x, y, eps, **kwargs)


@pytest.fixture(scope="module")
def results():
    return recorder.compute(_curve)


@pytest.fixture(scope="module")
def recorded():
    return json.loads((DATA / "robustness_results.json").read_text())[keras.backend.backend()]


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_same_results_as_recorded(results, recorded, model):
    got, want = results[model], recorded[model]
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        if isinstance(value, dict):  # attack name -> distances
            assert sorted(got[key]) == sorted(value), key
            for name, dist in value.items():
                np.testing.assert_allclose(got[key][name], dist, rtol=RTOL, err_msg=f"{key} {name}")
        elif key.endswith("_best") or key == "deepfool_iterations":
            assert got[key] == value, key
        else:
            np.testing.assert_allclose(got[key], value, rtol=RTOL, err_msg=key)
