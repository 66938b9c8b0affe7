"""Data-parallel training matches single-device training (examples/distributed/).

Under each KERAS_BACKEND the matching script runs in its own process (it
configures devices before its framework starts): JAX `DataParallel` on two
virtual CPU devices, TF `MirroredStrategy` on two logical CPUs, torch DDP in
two gloo processes. Each trains the same model from the same weights on the
same data for 3 epochs of 4 steps, with gamma = 0.1 * 1.5 ** step, once on
one device and once on two, and writes the figures compared here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {
    "jax": "jax_data_parallel.py",
    "tensorflow": "tf_mirrored.py",
    "torch": "torch_ddp.py",
}
pytestmark = pytest.mark.slow  # each script: 15-25 s of CPU, mostly framework imports

TIMEOUT = 400  # seconds; about 20 s of CPU time per script
EPOCHS, STEPS = 3, 12
# float32 training of a 300-weight model over 12 steps: the two runs only
# differ in the order of a few float32 sums (measured gaps: <= 2.4e-7).
TOL = 1e-5


def _only(backend: str) -> None:
    if keras.backend.backend() != backend:
        pytest.skip(f"runs under KERAS_BACKEND={backend}")


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> dict:
    """Run the current backend's script and return its JSON result."""
    backend = keras.backend.backend()
    if backend not in SCRIPTS:
        pytest.skip(f"no distributed example for KERAS_BACKEND={backend}")
    path = tmp_path_factory.mktemp("distributed") / "result.json"
    command = [sys.executable, str(ROOT / "examples" / "distributed" / SCRIPTS[backend])]
    # Own session: on a timeout the whole group (torch's workers too) is killed.
    proc = subprocess.Popen(
        [*command, "--json", str(path)],
        cwd=ROOT,
        # this checkout's keras_lpc, not another installed copy
        env=dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output = proc.communicate(timeout=TIMEOUT)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{SCRIPTS[backend]} ran longer than {TIMEOUT} s")
    assert proc.returncode == 0, output[-6000:]
    assert "max abs diff" in output  # the printed comparison
    return json.loads(path.read_text())


def test_two_replicas_and_twelve_steps(result):
    assert result["replicas"] == 2
    assert result["steps"] == STEPS
    for run in ("single", "distributed"):
        assert len(result[run]["step_loss"]) == STEPS
        assert len(result[run]["epoch_loss"]) == EPOCHS


def test_losses_penalty_and_weights_match_single_device(result):
    diff, single = result["max_abs_diff"], result["single"]
    for key in ("step_loss", "epoch_loss", "final_loss", "penalty", "weights"):
        assert diff[key] <= TOL, (key, diff[key])
    # The numbers compared are not trivial: training moved the loss, and the
    # final loss holds the penalty (cross-entropy > 0 on top of it).
    assert single["epoch_loss"][0] != pytest.approx(single["epoch_loss"][-1], abs=1e-3)
    assert 0.1 < single["penalty"] < single["final_loss"]


# gamma is computed inside the train step in float32: the schedule's value to
# float32 rounding (the logged per-step gamma is the Python, float64 value).
F32 = 1.2e-7


def test_gamma_follows_the_schedule_at_every_step(result):
    expected = [0.1 * 1.5**k for k in range(STEPS)]
    for run in ("single", "distributed"):
        # the float32 gamma the step computed (the layer's variable), to float32 rounding
        np.testing.assert_allclose(result[run]["step_gamma"], expected, rtol=1e-6)
        assert result[run]["final_gamma"] == pytest.approx(0.1 * 1.5**11, rel=F32)
    assert result["max_abs_diff"]["step_gamma"] == 0.0
    assert result["max_abs_diff"]["final_gamma"] == 0.0


def test_gamma_reaches_every_replica_at_every_step(result):
    rows = result["distributed"]["replica_gamma"]
    single = result["single"]["replica_gamma"]
    assert len(rows) == len(single) == STEPS
    for k, row in enumerate(rows):
        # every replica holds, bit for bit, what the single-device step computed
        assert row == [single[k][0]] * 2
        assert row[0] == pytest.approx(0.1 * 1.5**k, rel=F32)
    assert result["max_abs_diff"]["replica_gamma_max_abs_diff"] <= F32 * 0.1 * 1.5**11


def test_collapse_metrics_computed_once_per_epoch_with_single_device_values(result):
    for run in ("single", "distributed"):
        assert result[run]["metric_calls"] == EPOCHS  # not once per replica
        assert result[run]["collapse_is_scalar"]
        assert len(result[run]["collapse"]["val_nc1"]) == EPOCHS
    assert set(result["single"]["collapse"]) == set(result["distributed"]["collapse"])
    assert result["max_abs_diff"]["collapse_rel"] <= 1e-4


def test_jax_penalty_of_a_sharded_batch_is_the_global_mean(result):
    _only("jax")
    assert result["extra"]["penalty_input_shards"] == 2
    assert result["max_abs_diff"]["penalty"] <= TOL


def test_tensorflow_uneven_shards_change_the_penalty(result):
    _only("tensorflow")
    extra = result["extra"]
    assert extra["penalty_shards"] == [32, 32]
    assert extra["uneven_shards"] == [32, 31]
    # Keras averages per-replica means p1, p2: (p1 + p2) / 2. The mean over
    # the 63 samples is (32 p1 + 31 p2) / 63, so the gap is |p1 - p2| / 126,
    # far more than float error.
    p1, p2 = extra["uneven_replica_penalties"]
    assert extra["uneven_penalty_distributed"] == pytest.approx((p1 + p2) / 2, abs=1e-6)
    assert extra["uneven_penalty_global"] == pytest.approx((32 * p1 + 31 * p2) / 63, abs=1e-6)
    gap = extra["uneven_penalty_gap"]
    assert gap == pytest.approx(abs(p1 - p2) / 126, rel=1e-2)
    assert gap > 1e-5


def test_torch_metrics_on_rank_0_only_and_processes_in_sync(result):
    _only("torch")
    assert result["extra"]["metric_calls_per_process"] == [EPOCHS, 0]
    assert result["extra"]["process_weight_max_abs_diff"] == 0.0
