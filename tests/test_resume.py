"""Resuming an annealed run: BackupAndRestore after SIGKILL, and initial_epoch from a checkpoint.

The job (tests/data/resume_job.py) holds gamma's growth during epochs 3 and 4
(scripted metric), so a resume that lost the hold state would restart the
count at ``epoch * steps`` and drift from the uninterrupted run.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_lpc

DATA = Path(__file__).resolve().parent / "data"
_spec = importlib.util.spec_from_file_location("resume_job", DATA / "resume_job.py")
job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(job)

STEPS = job.SAMPLES // job.BATCH_SIZE  # 4
# Effective count of the last step of each epoch: epochs 3 and 4 are held at 12, the
# count epoch 3 starts from, and epoch 5 goes on from there (12, 13, 14, 15).
EXPECTED_COUNT = [3.0, 7.0, 11.0, 12.0, 12.0, 15.0]
EXACT = ("epoch", "gamma", "gamma_count", "gamma_holding", "scripted_accuracy")
CLOSE = ("loss", "accuracy", "val_nc1", "val_separation_ratio")


def _checkout_env(**extra: str) -> dict[str, str]:
    """The environment for a child Python that imports this checkout's keras_lpc."""
    root = str(DATA.parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def _rows(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _expected_gamma(count: float) -> float:
    schedule = keras_lpc.schedules.default_schedule()
    # the job's callback: the clock ramp with the hold (no TrainingPace; its own resume is
    # tested in tests/test_run.py)
    ramp = keras_lpc.GammaAnnealing(policy=keras_lpc.annealing.Hold()).ramp_fraction
    return schedule(count * schedule.span / (ramp * job.EPOCHS * STEPS))


def _assert_same_logs(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert {k: g[k] for k in EXACT} == {k: w[k] for k in EXACT}
        for key in CLOSE:
            np.testing.assert_allclose(g[key], w[key], rtol=1e-5, err_msg=key)


class _StopAfter(keras.callbacks.Callback):
    """Ends fit after ``epochs`` epochs, like an interruption between epochs."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch + 1 >= self.epochs:
            self.model.stop_training = True


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Start the job that SIGKILLs itself and meanwhile run the uninterrupted reference here."""
    tmp = tmp_path_factory.mktemp("resume")
    backup, killed_csv = tmp / "backup", tmp / "killed.csv"
    # Killed as epoch 4 (the second held epoch) runs, after BackupAndRestore saved epoch 3.
    command = [sys.executable, str(DATA / "resume_job.py"), str(backup), str(killed_csv)]
    proc = subprocess.Popen(
        [*command, "--kill", "4", "1"],
        env=_checkout_env(KERAS_BACKEND=keras.backend.backend()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        job.run(str(tmp / "backup_full"), str(tmp / "full.csv"))
        output = proc.communicate(timeout=300)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
    return {
        "backup": backup,
        "killed_csv": killed_csv,
        "returncode": proc.returncode,
        "output": output,
        "full": _rows(tmp / "full.csv"),
    }


def test_uninterrupted_run_holds_epochs_3_and_4(runs):
    full = runs["full"]
    assert [r["gamma_count"] for r in full] == EXPECTED_COUNT
    np.testing.assert_allclose(
        [r["gamma"] for r in full], [_expected_gamma(c) for c in EXPECTED_COUNT], rtol=1e-6
    )
    assert [r["gamma_holding"] for r in full] == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert all(np.isfinite(r["val_nc1"]) for r in full)


def test_sigkilled_run_resumed_by_backup_and_restore_matches_an_uninterrupted_run(runs):
    assert runs["returncode"] == -signal.SIGKILL, runs["output"][-3000:]
    backup, killed_csv = runs["backup"], runs["killed_csv"]
    assert len(_rows(killed_csv)) == 4  # epochs 0-3 were logged before the kill
    assert (backup / "latest.weights.h5").exists()
    job.run(str(backup), str(killed_csv))  # a new process would do this: restore epoch 4, go on
    _assert_same_logs(_rows(killed_csv), runs["full"])
    assert not backup.exists()  # BackupAndRestore deletes it after a finished run


def test_initial_epoch_resume_from_a_full_checkpoint_keeps_the_hold(runs, tmp_path):
    x, y, x_val, y_val = job.data()

    def callbacks():
        return [
            job.ScriptedMetric(),
            keras_lpc.GammaAnnealing(
                policy=keras_lpc.annealing.Hold("scripted_accuracy", fraction=0.8), max_gamma=1e3
            ),
            keras_lpc.CollapseMetrics((x_val, y_val)),
            keras.callbacks.CSVLogger(str(tmp_path / "resumed.csv"), append=True),
        ]

    fit = dict(batch_size=job.BATCH_SIZE, epochs=job.EPOCHS, shuffle=False, verbose=0)
    # First part: stopped after 4 of 6 epochs, checkpointed by a callback listed first.
    saver = keras.callbacks.ModelCheckpoint(str(tmp_path / "ep{epoch}.keras"))
    job.build().fit(x, y, callbacks=[saver, *callbacks(), _StopAfter(4)], **fit)
    # Second part, as a new process would do it: load epoch 4's file and go on from there.
    model = keras.saving.load_model(tmp_path / "ep4.keras", safe_mode=True)
    model.fit(x, y, initial_epoch=4, callbacks=callbacks(), **fit)
    _assert_same_logs(_rows(tmp_path / "resumed.csv"), runs["full"])


def test_the_state_a_checkpoint_of_epoch_4_holds_by_name():
    """The job stopped after epoch 4 (index 3): the layer's public state, field by field."""
    x, y, _, _ = job.data()
    model = job.build()
    callbacks = [
        job.ScriptedMetric(),
        keras_lpc.GammaAnnealing(
            policy=keras_lpc.annealing.Hold("scripted_accuracy", fraction=0.8), max_gamma=1e3
        ),
        _StopAfter(4),
    ]
    fit = dict(batch_size=job.BATCH_SIZE, epochs=job.EPOCHS, shuffle=False, verbose=0)
    model.fit(x, y, callbacks=callbacks, **fit)
    state = model.get_layer("lpc").annealing.resume
    # epoch 3 (held, rate 0) started at 12; epoch 4 starts at 12, held too (0.7 < 0.72)
    assert (state.current.epoch, state.current.count, state.current.rate) == (3, 12.0, 0.0)
    assert (state.next.epoch, state.next.count, state.next.rate) == (4, 12.0, 0.0)
    assert state.next.best == 0.9 and state.counts_per_epoch == STEPS
    assert state.scale == pytest.approx(1e3 / (0.95 * job.EPOCHS * STEPS))


def test_resume_without_matching_state_falls_back_to_epoch_times_steps_with_a_warning():
    x, y, _, _ = job.data()
    model = job.build()
    # Another run's state: annealed per epoch (1 count per epoch, not 4 steps).
    other = keras_lpc.GammaAnnealing(unit="epoch", policy=None)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[other])
    assert model.get_layer("lpc").annealing.resume.counts_per_epoch == 1
    cb = keras_lpc.GammaAnnealing(policy=None)
    with pytest.warns(UserWarning, match="does not match epoch 2"):
        h = model.fit(x, y, batch_size=8, epochs=3, initial_epoch=2, verbose=0, callbacks=[cb])
    assert h.history["gamma_count"] == [2.0 * STEPS + STEPS - 1]
    fresh = job.build()  # no state at all: the same count, silently
    assert fresh.get_layer("lpc").annealing.resume is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = fresh.fit(x, y, batch_size=8, epochs=3, initial_epoch=2, verbose=0, callbacks=[cb])
    assert not [w for w in caught if "GammaAnnealing" in str(w.message)]
    assert h.history["gamma_count"] == [11.0]
