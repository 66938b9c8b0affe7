"""The `keras-lpc` command's names, for ``from keras_lpc import cli``.

The command itself lives in the top-level module `keras_lpc_cli`, which
imports neither Keras nor this package before parsing ``--backend``; run it
as ``keras-lpc`` or ``python -m keras_lpc_cli``.
"""

from keras_lpc_cli import BACKENDS, build_parser, main, quiet_native_logs, select_backend

__all__ = ["BACKENDS", "build_parser", "main", "quiet_native_logs", "select_backend"]
