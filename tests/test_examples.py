"""The examples run, shortened, on every backend."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_trains_and_logs_gamma_and_nc1():
    result = _load("quickstart").main(epochs=4)
    # the paced default reaches its maximum (1e3) at half of the 4-epoch run
    assert result["gamma"] == pytest.approx(1e3)
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["val_nc1"] >= 0.0
