"""Keras' log-reading callbacks run after keras_lpc's log writers, whatever the list order.

Keras calls every callback's ``on_epoch_end`` in list order with one shared
``logs`` dict, so a key written by a callback listed after ``CSVLogger``,
``TensorBoard``, ``EarlyStopping``, ``ModelCheckpoint``, ``ReduceLROnPlateau``,
``BackupAndRestore`` or ``RemoteMonitor`` never reaches them. Keras offers
no public way to order callbacks, so this one module does it: called from a
keras_lpc callback's ``on_train_begin``, `lead_callbacks` finds the running
`keras.callbacks.CallbackList` (a few frames up the stack: the list calls
the hook) and gives it a new list in which those Keras callbacks, where
listed before the last keras_lpc log writer, come right after it. A keras_lpc
log writer is any callback whose class sets ``keras_lpc_writes_logs = True``
(`GammaAnnealing`, the metric callbacks, and users' own subclasses of
`keras_lpc.callbacks.MetricCallback`). Every other callback keeps its place.

A metric measured every ``k`` epochs is absent from the logs of the epochs
in between (its writer's ``occasional_keys()``), and Keras' monitors treat
absence and NaN differently: ``EarlyStopping`` and ``ReduceLROnPlateau``
skip an epoch without the key but count a NaN against their patience, while
``ModelCheckpoint(save_best_only=True)`` saves on an epoch without it but
not on a NaN. So those two patience monitors run first, then a small
`CompleteLogs` callback writes NaN for the missing keys, then the other
readers (``ModelCheckpoint``, ``CSVLogger``, ``TensorBoard``, ``History``...).

When the list cannot be found (Keras changed, or the hooks are called by
hand) a warning says so; tests/test_ordering.py fails loudly the day Keras
changes the structure used here.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import keras

__all__ = ["CONSUMERS", "PATIENT", "CompleteLogs", "lead_callbacks", "writes_logs"]

#: Keras' callbacks that read the epoch's logs and write nothing others need.
CONSUMERS = (
    keras.callbacks.CSVLogger,
    keras.callbacks.TensorBoard,
    keras.callbacks.EarlyStopping,
    keras.callbacks.ModelCheckpoint,
    keras.callbacks.ReduceLROnPlateau,
    keras.callbacks.BackupAndRestore,
    keras.callbacks.RemoteMonitor,
)

#: Keras' monitors that skip an epoch whose logs lack their key (and count a NaN).
PATIENT = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau)

_FRAMES = 8  # how far up the stack the calling CallbackList may be


class CompleteLogs(keras.callbacks.Callback):
    """Writes NaN for the keras_lpc keys an epoch did not measure (placed by `lead_callbacks`)."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__()
        self.keys = keys

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            for key in self.keys:
                logs.setdefault(key, float("nan"))


def writes_logs(callback: Any) -> bool:
    """Whether ``callback`` is a keras_lpc log writer (its class says so)."""
    return bool(getattr(type(callback), "keras_lpc_writes_logs", False))


def _calling_list(callback: Any) -> Any:
    frame = sys._getframe(2)
    for _ in range(_FRAMES):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList) and any(
            cb is callback for cb in owner.callbacks
        ):
            return owner
        frame = frame.f_back
    return None


def lead_callbacks(callback: Any) -> bool:
    """Move Keras' log readers of the running ``fit`` after keras_lpc's last log writer.

    Returns whether the calling `keras.callbacks.CallbackList` was found
    (a `RuntimeWarning` says so when not).
    """
    owner = _calling_list(callback)
    if owner is None:
        warnings.warn(
            f"{type(callback).__name__}: could not find the CallbackList calling it; list "
            f"{type(callback).__name__} before CSVLogger, TensorBoard, EarlyStopping and "
            "ModelCheckpoint so that they see its keys.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    callbacks = [cb for cb in owner.callbacks if not isinstance(cb, CompleteLogs)]
    last = max(i for i, cb in enumerate(callbacks) if writes_logs(cb))
    head, tail = callbacks[: last + 1], callbacks[last + 1 :]
    kept = [cb for cb in head if not isinstance(cb, CONSUMERS)]
    moved = [cb for cb in head if isinstance(cb, CONSUMERS)]
    patient = [cb for cb in moved + tail if isinstance(cb, PATIENT)]
    keys = [
        k for cb in callbacks if writes_logs(cb) for k in getattr(cb, "occasional_keys", list)()
    ]
    complete = [CompleteLogs(keys)] if keys else []
    rest = [cb for cb in moved if not isinstance(cb, PATIENT)]
    rest += [cb for cb in tail if not isinstance(cb, PATIENT)]
    # A new list: CallbackList.on_train_begin is iterating the old one.
    owner.callbacks = kept + patient + complete + rest
    for cb in complete:
        cb.set_model(callback.model)
        cb.set_params(owner.params)
    return True
