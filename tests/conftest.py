"""Shared test set-up: the suite runs unchanged under every KERAS_BACKEND."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# XLA's LLVM back end spends most of a JAX test's time optimising machine code that
# then runs for milliseconds: the CROWN bound of a small CNN compiled in 16 s of its
# 22 s. The suite checks values, not speed, so it compiles with LLVM's cheap
# settings (a third less CPU time over the certified-bound tests, same results);
# benchmarks/ and users keep XLA's defaults. Set here, before JAX is imported, so
# the processes the tests start inherit it too; an XLA_FLAGS already set wins.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The garbage collector's full pass visits every object of every imported module:
# with Keras and its backend loaded that is 0.4-0.7 million objects and 0.3-1 s on
# CI's two cores, once per test (`clear_session` collects). Objects that exist once
# the modules are imported live for the whole session, so they are moved out of
# the collector's sight (`gc.freeze`): after collection, and again after a test
# that imported new modules (tensorflow for tf.data under JAX, matplotlib...).
# Only objects alive at that moment are frozen: the module-level state of the
# new modules and the fixtures then held.
_frozen_modules = 0

# PyTorch's intra-op threads spin while they wait for each other: with its default
# (one thread per core) and other processes on the cores (CI's `pytest -n 2` on two
# cores, or other jobs), a small model's train step took 126 ms against 5.9 ms with
# one thread (measured here, a 16-64-64-8-5 MLP). One thread per test process, and
# for the processes the tests start, unless OMP_NUM_THREADS says otherwise.
if keras.backend.backend() == "torch" and "OMP_NUM_THREADS" not in os.environ:
    import torch  # noqa: E402

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def _freeze_if_new_modules() -> None:
    global _frozen_modules
    if len(sys.modules) != _frozen_modules:
        gc.collect()
        gc.freeze()
        _frozen_modules = len(sys.modules)


def pytest_collection_finish(session):
    _freeze_if_new_modules()


def pytest_report_header(config):
    return f"keras-lpc: KERAS_BACKEND={keras.backend.backend()} (keras {keras.__version__})"


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(1234)
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)
    keras.backend.clear_session()
    _freeze_if_new_modules()


# What importing keras-lpc does in a new process, for tests/test_cli.py and
# tests/test_datasets.py: one interpreter start (Keras and its backend) for them all.
_FRESH_PYTHON = """
import json, sys
import keras_lpc_cli as cli
out = {"after_cli": [m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules]}
out["select_backend"] = cli.select_backend(sys.argv[1])
import keras_lpc  # before any `import keras` of the user's
out["pace_before_keras"] = keras_lpc.callbacks.TrainingPace.__name__
import keras
out["backend"] = keras.backend.backend()
before = set(sys.modules)
import keras_lpc.datasets, keras_lpc.plotting
out["added_by_datasets_and_plotting"] = sorted(
    m for m in set(sys.modules) - before
    if m.split(".")[0] in ("tensorflow_datasets", "matplotlib", "tensorflow")
)
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def fresh_python() -> dict:
    """A new Python, KERAS_BACKEND unset: import keras_lpc_cli, select this session's
    backend with it, import keras_lpc (reading a callback class before the user
    imports keras), keras, then keras_lpc.datasets and .plotting;
    what it found at each stage (see `_FRESH_PYTHON`)."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_PYTHON, keras.backend.backend()],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def backend() -> str:
    return keras.backend.backend()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
