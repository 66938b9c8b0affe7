"""`keras_lpc.callbacks.ordering`: Keras' log readers run after keras_lpc's log writers.

`test_the_running_callback_list_is_found_inside_fit` fails loudly the day
Keras changes how ``fit`` calls its callbacks (the module looks for the
calling `keras.callbacks.CallbackList` a few frames up the stack).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc.callbacks import ordering


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
