"""Matplotlib figures for LPC runs: training curves, binary encoding, robustness.

Every function takes arrays or `History.history` dicts, draws on a new
`matplotlib.figure.Figure` (or on the given ``ax``), saves a PNG when
``path`` is given and returns the Figure. Figures are built without
`matplotlib.pyplot` and saved through the Agg canvas, so nothing here needs a
display or changes pyplot's global state. Matplotlib is imported when a
function is called (extra: ``pip install keras-lpc[plot]``).
"""

from keras_lpc.plotting.information import INFORMATION_KEYS, plot_information
from keras_lpc.plotting.latents import plot_latent_histograms, plot_latents_2d
from keras_lpc.plotting.robustness import pearson_r, plot_bracket, plot_separation_vs_robustness
from keras_lpc.plotting.training import (
    TRAINING_KEYS,
    plot_objective_vs_gamma,
    plot_training_curves,
)

__all__ = [
    "TRAINING_KEYS",
    "INFORMATION_KEYS",
    "pearson_r",
    "plot_bracket",
    "plot_information",
    "plot_latent_histograms",
    "plot_latents_2d",
    "plot_objective_vs_gamma",
    "plot_separation_vs_robustness",
    "plot_training_curves",
]
