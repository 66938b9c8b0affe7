"""The shared checks of `keras_lpc._validation`: the one "install the extra" error."""

from __future__ import annotations

import sys

import pytest

from keras_lpc._validation import require


def test_require_imports_or_names_the_extra(monkeypatch):
    assert require("json", "none", "a test").dumps([1]) == "[1]"
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError) as info:
        require("matplotlib.figure", "plot", "keras_lpc.plotting")
    assert str(info.value) == (
        "keras_lpc.plotting needs matplotlib (missing: matplotlib.figure): "
        "pip install 'keras-lpc[plot]'"
    )


def test_every_extra_uses_it(monkeypatch):
    from keras_lpc import surgery, tuning
    from keras_lpc.backend import tf_data

    for module, call, extra in (
        ("keras_hub", surgery.require_keras_hub, "hub"),
        ("keras_tuner", tuning.require_keras_tuner, "tune"),
        ("tensorflow_datasets", tf_data.require_tfds, "data"),
    ):
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(ImportError, match=rf"pip install 'keras-lpc\[{extra}\]'$"):
            call()
