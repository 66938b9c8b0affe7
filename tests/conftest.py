"""Shared test set-up: the suite runs unchanged under every KERAS_BACKEND."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_report_header(config):
    return f"keras-lpc: KERAS_BACKEND={keras.backend.backend()} (keras {keras.__version__})"


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(1234)
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)
    keras.backend.clear_session()


@pytest.fixture
def backend() -> str:
    return keras.backend.backend()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
