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
When the list cannot be found (Keras changed, or the hooks are called by
hand) a warning says so; tests/test_ordering.py fails loudly the day Keras
changes the structure used here.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import keras

__all__ = ["CONSUMERS", "lead_callbacks", "writes_logs"]

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

_FRAMES = 8  # how far up the stack the calling CallbackList may be


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
            f"{type(callback).__name__}: could not find the CallbackList calling it; list it "
            "before CSVLogger, TensorBoard, EarlyStopping and ModelCheckpoint so that they "
            "see its keys.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    callbacks = list(owner.callbacks)
    last = max(i for i, cb in enumerate(callbacks) if writes_logs(cb))
    head = callbacks[: last + 1]
    moved = [cb for cb in head if isinstance(cb, CONSUMERS)]
    if moved:
        kept = [cb for cb in head if not isinstance(cb, CONSUMERS)]
        # A new list: CallbackList.on_train_begin is iterating the old one.
        owner.callbacks = kept + moved + callbacks[last + 1 :]
    return True
