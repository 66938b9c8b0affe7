"""Messages to the user, as Keras prints its own (`keras.config` interactive logging)."""

from __future__ import annotations

import logging
import sys

import keras

_LOG = logging.getLogger("keras_lpc")


def print_msg(message: str) -> None:
    """Print ``message`` to stdout, or log it at INFO when Keras' interactive logging is off.

    Keras routes its own progress messages the same way
    (``keras.config.disable_interactive_logging()``); this uses the public
    switch only.

    Example:

    >>> print_msg("gamma is 1.5")
    gamma is 1.5
    """
    if keras.config.is_interactive_logging_enabled():
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    else:
        _LOG.info(message)
