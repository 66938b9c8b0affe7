"""The main job: train a baseline and an LPC model, measure both, report honestly.

`run_demo` trains, for each seed, a baseline (the same architecture and
recipe, gamma held at 0) and an LPC model (`GammaAnnealing()` defaults) on
an embedded data set, with `CollapseMetrics` and `RobustnessMetrics` on, then
measures on the test split: accuracy; DeepFool (mean, median, never-flipped
count); PGD accuracy at two L-inf budgets; the Lipschitz proxy; NC1, the
separation ratio, binarity; misclassification AUROC (Mahalanobis / softmax).
It writes ``report.json``, ``report.md`` and PNG figures to ``out`` and
returns the report. The verdict lines are computed from the numbers, never
written in advance.

Modules: `config` (settings, data), `architectures` (the models),
`training` (one arm's fit), `measurement` (the typed `RunResult`),
`report` (summary, verdict, files), `figures`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import keras

from keras_lpc._io import print_msg
from keras_lpc.demo.architectures import build_model
from keras_lpc.demo.config import (
    ARCHITECTURES,
    DATASETS,
    MODELS,
    DemoConfig,
    load_data,
    output_folder,
)
from keras_lpc.demo.figures import paired_points as paired_points
from keras_lpc.demo.figures import write_figures
from keras_lpc.demo.measurement import RunResult, measure
from keras_lpc.demo.report import SCALARS as SCALARS
from keras_lpc.demo.report import format_table, setup_line, summarize, write_report
from keras_lpc.demo.report import verdict as verdict
from keras_lpc.demo.training import TrainedArm as TrainedArm
from keras_lpc.demo.training import train

__all__ = [
    "ARCHITECTURES",
    "DATASETS",
    "MODELS",
    "DemoConfig",
    "RunResult",
    "build_model",
    "load_data",
    "output_folder",
    "run_demo",
    "train_and_measure",
]


def train_and_measure(kind: str, seed: int, data: Any, config: DemoConfig) -> RunResult:
    """Train one model (``kind`` is ``"baseline"`` or ``"lpc"``) and measure it."""
    return measure(train(kind, seed, data, config), data, config)


def run_demo(config: DemoConfig | None = None, **overrides: Any) -> dict[str, Any]:
    """Train both arms for every seed, print the comparison and write the report.

    Returns the report dictionary (also written to ``out/report.json``).
    """
    config = dataclasses.replace(config or DemoConfig(), **overrides)
    output_folder(config.out)
    data = load_data(config)
    if config.verbose:
        print_msg(
            f"keras-lpc demo: {config.dataset} ({len(data.x_train)} train / {len(data.x_test)} test), "
            f"{config.seeds} seed(s) x {config.epochs} epochs, backend {keras.backend.backend()}"
        )
        print_msg(f"  {setup_line(config)}")
    start = time.perf_counter()
    runs = [
        train_and_measure(kind, seed, data, config)
        for seed in range(config.seeds)
        for kind in MODELS
    ]
    summary = summarize(runs)
    figures = list(write_figures(runs, config))
    report = write_report(config, runs, summary, figures, time.perf_counter() - start)
    if config.verbose:
        print_msg(f"\n{format_table(summary)}\n")
        for line in report["verdict"]:
            print_msg("  " + line)
        print_msg(
            f"\nReport and figures written to {Path(config.out)}/ ({report['seconds']:.0f} s)"
        )
    return report
