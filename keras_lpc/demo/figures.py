"""The demo's figures: training curves, latent histograms, separation vs robustness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keras_lpc._validation import epoch_positions
from keras_lpc.demo.config import MODELS, DemoConfig
from keras_lpc.demo.measurement import RunResult


def paired_points(
    runs: list[RunResult], every_collapse: int, every_robust: int
) -> tuple[np.ndarray, np.ndarray]:
    """(separation ratio, DeepFool) at every epoch where both were computed, all runs.

    A history holds either the computed values only (logged every k epochs)
    or one value per epoch with NaN between computations; both work.
    """
    sep, rob = [], []
    for run in runs:
        h = run.history
        separation = np.asarray(h.get("val_separation_ratio", []), dtype=np.float64)
        deepfool = np.asarray(h.get("val_deepfool", []), dtype=np.float64)
        epochs = len(h.get("loss", ()))
        # a series as long as the run has one value per epoch (NaN between computations)
        at_sep = epoch_positions(
            len(separation), epochs, None if len(separation) == epochs else every_collapse
        )
        at_rob = epoch_positions(
            len(deepfool), epochs, None if len(deepfool) == epochs else every_robust
        )
        _, i_sep, i_rob = np.intersect1d(at_sep, at_rob, return_indices=True)
        both = np.isfinite(separation[i_sep]) & np.isfinite(deepfool[i_rob])
        sep.extend(separation[i_sep][both].tolist())
        rob.extend(deepfool[i_rob][both].tolist())
    return np.array(sep), np.array(rob)


def write_figures(runs: list[RunResult], config: DemoConfig) -> dict[str, Any]:
    """Write the PNGs of the first seed's runs to ``config.out``.

    Returns ``{file name: matplotlib Figure}`` in the order written: the
    training curves, the LPC model's latent histograms, the robustness
    bracket of each arm (certified below, found above, per input), separation
    vs robustness (with at least 3 paired points), the 2-d latents (``dim=2``).
    """
    from keras_lpc import plotting

    out = Path(config.out)
    first = {r.model: r for r in runs if r.seed == 0}
    lpc = first["lpc"]
    figures = {
        "training_curves.png": plotting.plot_training_curves(
            {k: first[k].history for k in MODELS}, path=out / "training_curves.png"
        ),
        "latent_histograms.png": plotting.plot_latent_histograms(
            lpc.z_test, lpc.y_test, path=out / "latent_histograms.png"
        ),
    }
    for kind in MODELS:
        run = first[kind]
        if run.certified_result is not None and run.ensemble_result is not None:
            name = f"bracket_{kind}.png"
            figures[name] = plotting.plot_bracket(
                run.certified_result.distance,
                run.ensemble_result.distance[: len(run.certified_result.distance)],
                title=kind,
                ylabel=f"L2 distance ({config.certify} below, attack ensemble above)",
                path=out / name,
            )
    sep, rob = paired_points(runs, config.collapse_every, config.robustness_every_run)
    if len(sep) >= 3:
        figures["separation_vs_robustness.png"] = plotting.plot_separation_vs_robustness(
            sep, rob, path=out / "separation_vs_robustness.png"
        )
    if config.dim == 2:
        figures["latents_2d.png"] = plotting.plot_latents_2d(
            lpc.z_test, lpc.y_test, path=out / "latents_2d.png"
        )
    return figures
