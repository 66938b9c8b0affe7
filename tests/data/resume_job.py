"""The training job of tests/test_resume.py, importable and runnable as a script.

``python tests/data/resume_job.py BACKUP_DIR CSV_PATH [--kill EPOCH BATCH]``
trains the model of `build` for `EPOCHS` epochs with
`keras.callbacks.BackupAndRestore`, `GammaAnnealing` (the default
per-step schedule, holding on a scripted training metric), `CollapseMetrics`
and `CSVLogger(append=True)`; with ``--kill`` the process sends itself
SIGKILL when that (0-based) epoch and batch begin, like a preempted job.

The scripted metric ``scripted_accuracy`` takes the values `SCRIPT` (one per
epoch), so the hold is known by hand: with ``Hold(fraction=0.8)`` epochs 3
and 4 are held (0.6 and 0.7 are below 0.8 * 0.9), epoch 5 is not.
"""

from __future__ import annotations

import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lpc  # noqa: E402

EPOCHS = 6
BATCH_SIZE = 8
SAMPLES = 32  # 4 steps per epoch
SCRIPT = (0.5, 0.9, 0.6, 0.7, 0.95, 0.95)


def build() -> keras.Model:
    """A compiled 4 -> Dense(8, silu) -> LatentPointCollapse(2) -> Dense(3) classifier."""
    init = keras.initializers.GlorotUniform
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="silu", kernel_initializer=init(11), name="body"),
            keras_lpc.LatentPointCollapse(2, kernel_initializer=init(12), name="lpc"),
            keras.layers.Dense(3, kernel_initializer=init(13), name="head"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training and validation arrays: 3 Gaussian classes in 4 dimensions."""
    rng = np.random.default_rng(5)
    centres = 2.0 * rng.normal(size=(3, 4))
    y = rng.integers(0, 3, size=SAMPLES + 24)
    x = (centres[y] + rng.normal(size=(len(y), 4))).astype("float32")
    return x[:SAMPLES], y[:SAMPLES], x[SAMPLES:], y[SAMPLES:]


class ScriptedMetric(keras.callbacks.Callback):
    """Writes ``SCRIPT[epoch]`` as ``scripted_accuracy`` into batch and epoch logs."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["scripted_accuracy"] = SCRIPT[self.epoch]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["scripted_accuracy"] = SCRIPT[epoch]


class KillAt(keras.callbacks.Callback):
    """SIGKILLs its own process when ``(epoch, batch)`` begins: no cleanup runs."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__()
        self.target = (epoch, batch)
        self.epoch = -1

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if (self.epoch, batch) == self.target:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def run(backup_dir: str, csv_path: str, kill: tuple[int, int] | None = None) -> keras.Model:
    """Train (or resume) the job; the checkpointing callback comes first on purpose."""
    x, y, x_val, y_val = data()
    model = build()
    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir),
        ScriptedMetric(),
        keras_lpc.GammaAnnealing(
            policy=keras_lpc.annealing.Hold("scripted_accuracy", fraction=0.8), max_gamma=1e3
        ),
        keras_lpc.CollapseMetrics((x_val, y_val)),
        keras.callbacks.CSVLogger(csv_path, append=True),
    ]
    if kill is not None:
        callbacks.append(KillAt(*kill))
    model.fit(
        x,
        y,
        batch_size=BATCH_SIZE,
        epochs=EPOCHS,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    return model


if __name__ == "__main__":
    args = sys.argv[1:]
    kill_at = None
    if len(args) == 5 and args[2] == "--kill":
        kill_at = (int(args[3]), int(args[4]))
    elif len(args) != 2:
        raise SystemExit(__doc__)
    run(args[0], args[1], kill_at)
