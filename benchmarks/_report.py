"""Shared by the benchmark scripts: machine description and docs/benchmarks.md sections.

Each script owns one section of docs/benchmarks.md, delimited by
``<!-- BEGIN name -->`` / ``<!-- END name -->`` markers, and rewrites only
that section, so scripts run in any order without clobbering each other.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable
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


def per_backend(
    script: str,
    backends: list[str],
    args: Callable[[str], list[str]],
    *,
    marker: str = "ROWS ",
    env: dict[str, str] | None = None,
) -> list[object]:
    """Run ``script`` once per backend, each in its own process, and collect what each printed.

    A Keras backend is fixed per process, so a benchmark that compares
    backends runs itself as a child per backend, one after the other:
    ``python script *args`` with ``KERAS_BACKEND`` set (and the entries of
    ``env``), this checkout on ``PYTHONPATH``. Each child prints one line
    starting with ``marker`` followed by JSON; the decoded JSON values are
    returned in the order of ``backends``. A child that printed no such line
    stops the run, with the end of its error output.

    Example: ``per_backend(__file__, ["jax", "torch"], lambda name: ["--backend", name])``.
    """
    root = str(DOC.parent.parent)
    results = []
    for name in backends:
        child_env = dict(os.environ, KERAS_BACKEND=name, **(env or {}))
        child_env["PYTHONPATH"] = os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        out = subprocess.run(
            [sys.executable, script, *args(name)],
            env=child_env,
            capture_output=True,
            text=True,
            cwd=root,
        )
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith(marker)]
        if not lines:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{Path(script).name} failed on the {name} backend")
        results.append(json.loads(lines[-1][len(marker) :]))
    return results


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
