"""`keras_lpc.callbacks.ordering`: Keras' log readers run after keras_lpc's log writers.

`test_the_running_callback_list_is_found_inside_fit` fails loudly the day
Keras changes how ``fit`` calls its callbacks (the module looks for the
calling `keras.callbacks.CallbackList` a few frames up the stack).
"""

from __future__ import annotations

import csv
import warnings

import keras
import numpy as np
import pytest
from _callback_models import Seen, lpc_model, small_data

import keras_lpc
from keras_lpc.callbacks import ordering
from keras_lpc.metrics import collapse_metrics


class _Writer(keras.callbacks.Callback):
    """A log writer by its class attribute (no keras_lpc base class needed)."""

    keras_lpc_writes_logs = True

    def __init__(self, keys=()):
        super().__init__()
        self.keys, self.found = list(keys), None

    def occasional_keys(self):
        return self.keys

    def on_train_begin(self, logs=None):
        self.found = ordering.lead_callbacks(self)


class _User(keras.callbacks.Callback):
    pass


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    return model


def test_the_running_callback_list_is_found_inside_fit():
    writer = _Writer()
    x = np.zeros((4, 3), "float32")
    _model().fit(x, np.zeros((4, 2)), epochs=1, verbose=0, callbacks=[writer])
    assert writer.found is True, "Keras changed how fit calls callbacks: see ordering.py"


def test_readers_move_after_the_last_writer_the_patient_ones_first():
    csv = keras.callbacks.CSVLogger("unused.csv")
    stop = keras.callbacks.EarlyStopping(monitor="val_x", mode="max")
    best = keras.callbacks.ModelCheckpoint("unused.keras", monitor="val_x", mode="max")
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_x", mode="max")
    user1, user2, writer = _User(), _User(), _Writer(["val_x"])
    hooks = keras.callbacks.CallbackList(
        [csv, stop, user1, writer, best, plateau, user2], model=_model()
    )
    hooks.on_train_begin()  # what fit does first
    order = hooks.callbacks
    complete = [cb for cb in order if isinstance(cb, ordering.CompleteLogs)]
    assert len(complete) == 1 and complete[0].keys == ["val_x"]
    assert order == [user1, writer, stop, plateau, complete[0], csv, best, user2]
    # called again (a second writer, a second fit): still one CompleteLogs, same order
    hooks.on_train_begin()
    again = [type(cb) if isinstance(cb, ordering.CompleteLogs) else cb for cb in hooks.callbacks]
    assert again == [user1, writer, stop, plateau, ordering.CompleteLogs, csv, best, user2]


def test_complete_logs_writes_nan_for_missing_keys_only():
    complete = ordering.CompleteLogs(["a", "b"])
    logs = {"a": 1.0}
    complete.on_epoch_end(0, logs)
    assert logs["a"] == 1.0 and np.isnan(logs["b"])


def test_writers_are_recognised_by_their_class_attribute():
    assert ordering.writes_logs(keras_lpc.GammaAnnealing())
    assert ordering.writes_logs(keras_lpc.CollapseMetrics((np.zeros((4, 3)), np.zeros(4))))
    assert ordering.writes_logs(_Writer()) and not ordering.writes_logs(_User())


def test_outside_a_callback_list_it_warns_which_callback_to_move():
    with pytest.warns(RuntimeWarning, match="list _Writer before CSVLogger"):
        assert ordering.lead_callbacks(_Writer()) is False


# -- keras_lpc's keys among Keras' own callbacks in fit ---------------------------------------


class _UserKeyWriter(keras.callbacks.Callback):
    """A user's callback writing a key of its own: it keeps its place, first."""

    def on_epoch_end(self, epoch, logs=None):
        logs["user_key"] = float(epoch)


def test_gamma_reaches_a_csv_logger_listed_before_gamma_annealing_alone(tmp_path):
    x, y = small_data(32)
    model = lpc_model()
    csv_path = tmp_path / "log.csv"
    schedule = keras_lpc.schedules.Linear(0.0, 3.0, 3)  # per epoch: 0, 1, 2
    annealing = keras_lpc.GammaAnnealing(schedule, unit="epoch")
    model.fit(
        x, y, epochs=3, batch_size=16, verbose=0,
        callbacks=[keras.callbacks.CSVLogger(str(csv_path)), annealing],
    )  # fmt: skip
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["gamma"]) for r in rows] == pytest.approx([0.0, 1.0, 2.0])


def test_keys_reach_callbacks_listed_before_them(tmp_path):
    x, y = small_data()
    model = lpc_model()
    seen = Seen()
    csv_path = tmp_path / "log.csv"
    ckpt = tmp_path / "best.keras"
    keras_callbacks = [
        _UserKeyWriter(),
        keras.callbacks.CSVLogger(str(csv_path)),
        keras.callbacks.EarlyStopping(monitor="val_nc1", mode="min", patience=5),
        keras.callbacks.ModelCheckpoint(
            str(ckpt), monitor="val_separation_ratio", mode="max", save_best_only=True
        ),
    ]
    collapse = keras_lpc.CollapseMetrics((x, y), labels="true", every=3)
    robust = keras_lpc.RobustnessMetrics((x, y), lipschitz=False)
    annealing = keras_lpc.GammaAnnealing(keras_lpc.schedules.Constant(0.5), unit="epoch")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = model.fit(
            x,
            y,
            epochs=4,
            batch_size=16,
            verbose=0,
            callbacks=keras_callbacks + [annealing, collapse, robust, seen],
        )
    messages = [str(w.message) for w in record]
    assert not [m for m in messages if "val_nc1" in m or "val_separation_ratio" in m], messages
    ours = {"val_nc1", "val_separation_ratio", "val_deepfool", "gamma"}
    assert ours <= seen.keys[0]  # from the first epoch on
    assert "gamma" in seen.keys[1] and "val_nc1" in seen.keys[1]  # NaN after the monitors
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and ours | {"user_key"} <= set(rows[0])
    assert [float(r["user_key"]) for r in rows] == [0.0, 1.0, 2.0, 3.0]
    assert float(rows[0]["gamma"]) == pytest.approx(0.5)
    # every=3: computed at epochs 1, 3 and the last (4); NaN at epoch 2
    assert collapse.computed_epochs == [0, 2, 3]
    nc1 = history.history["val_nc1"]
    assert len(nc1) == len(history.history["loss"]) == 4
    assert np.isnan(nc1[1]) and rows[1]["val_nc1"] == "nan"
    assert np.all(np.isfinite([nc1[0], nc1[2], nc1[3]]))
    assert float(rows[2]["val_nc1"]) == pytest.approx(nc1[2])
    # RobustnessMetrics' default every=10 > epochs: the first and the last epoch
    assert robust.computed_epochs == [0, 3]
    deepfool = history.history["val_deepfool"]
    assert len(deepfool) == 4 and np.isnan(deepfool[1:3]).all()
    assert ckpt.exists()
    # the last logged value is the function's value on the final model
    z = keras_lpc.latents(model, x)
    expected = collapse_metrics(z, y)
    assert nc1[-1] == pytest.approx(expected["nc1"], rel=1e-4)


class _Scripted(keras_lpc.callbacks.MetricCallback):
    """A user's metric callback on the public base class: a scripted score per epoch."""

    metric_names = ("score",)
    uses_labels = False

    def __init__(self, data, values, **kwargs):
        super().__init__(data, **kwargs)
        self.values = values

    def measure(self, x, y):
        return {"score": self.values[len(self.computed_epochs)]}


@pytest.mark.parametrize("monitor", ["early_stopping", "checkpoint", "reduce_lr"])
def test_monitors_on_a_key_measured_every_k_epochs_skip_the_epochs_in_between(monitor, tmp_path):
    x, y = small_data(16)
    model = lpc_model()
    # every=3 over 8 epochs: measured at epochs 0, 2, 5 and 7, improving every time
    scripted = _Scripted((x, y), [0.1, 0.2, 0.3, 0.4], every=3)
    keras_monitor = {
        "early_stopping": keras.callbacks.EarlyStopping(
            monitor="val_score", mode="max", patience=2
        ),
        "checkpoint": keras.callbacks.ModelCheckpoint(
            str(tmp_path / "best_{epoch}.weights.h5"),
            monitor="val_score",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
        ),
        "reduce_lr": keras.callbacks.ReduceLROnPlateau(
            monitor="val_score", mode="max", patience=1, factor=0.5
        ),
    }[monitor]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = model.fit(
            x, y, epochs=8, batch_size=8, verbose=0, callbacks=[keras_monitor, scripted]
        )
    assert not [w for w in record if "val_score" in str(w.message)]
    assert len(history.history["loss"]) == 8  # never stopped by the epochs in between
    assert scripted.computed_epochs == [0, 2, 5, 7]
    score = history.history["val_score"]
    assert score[0] == 0.1 and score[7] == 0.4 and np.isnan(score[1])
    if monitor == "checkpoint":  # a file at every measured epoch (each one a new best), only
        saved = sorted(p.name for p in tmp_path.glob("best_*.weights.h5"))
        assert saved == [
            "best_1.weights.h5",
            "best_3.weights.h5",
            "best_6.weights.h5",
            "best_8.weights.h5",
        ]
    if monitor == "reduce_lr":  # improving at every measurement: never reduced
        assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(
            1e-3
        )
    # the filters that silenced Keras' warnings for val_score are gone after fit
    assert not [f for f in warnings.filters if "val_score" in str(f[1])]


def test_lead_outside_fit_warns_which_callback_to_move():
    x, y = small_data()
    cb = keras_lpc.CollapseMetrics((x, y))
    cb.set_model(lpc_model())
    with pytest.warns(RuntimeWarning, match="list CollapseMetrics before CSVLogger"):
        cb.on_train_begin()
