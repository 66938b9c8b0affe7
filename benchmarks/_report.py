"""Shared by the benchmark scripts: machine description and docs/benchmarks.md sections.

Each script owns one section of docs/benchmarks.md, delimited by
``<!-- BEGIN name -->`` / ``<!-- END name -->`` markers, and rewrites only
that section, so scripts run in any order without clobbering each other.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is written by the script named in it; rerun it to refresh.\n"


def machine() -> str:
    """One line naming the machine and the library versions in use."""
    import keras
    import numpy

    parts = [
        f"{platform.machine()} {os.cpu_count()} cores",
        f"Python {platform.python_version()}",
        f"keras {keras.__version__} ({keras.backend.backend()})",
        f"numpy {numpy.__version__}",
    ]
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            parts.append(f"tensorflow {tf.__version__}")
        elif backend == "jax":
            import jax

            parts.append(f"jax {jax.__version__} on {jax.devices()[0].platform}")
        elif backend == "torch":
            import torch

            parts.append(f"torch {torch.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table; floats are shown with 4 significant digits."""

    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def update_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``body``."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text() if DOC.exists() else HEADER
    block = f"<!-- BEGIN {name} -->\n{body.strip()}\n<!-- END {name} -->"
    pattern = re.compile(
        rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S
    )
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    DOC.write_text(text)


def epoch_timer():
    """A Keras callback recording each epoch's wall time (seconds) in ``.times``."""
    import time

    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t)

    return EpochTimer()
