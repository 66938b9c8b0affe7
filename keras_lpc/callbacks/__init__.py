"""Keras callbacks: thin adapters between `fit` and keras_lpc's pure functions."""

from keras_lpc.callbacks.collapse_metrics import CollapseMetrics
from keras_lpc.callbacks.gamma_annealing import GammaAnnealing, default_schedule, gamma_budget
from keras_lpc.callbacks.information_metrics import InformationMetrics, plot_information
from keras_lpc.callbacks.pacing import TrainingPace
from keras_lpc.callbacks.robustness_metrics import RobustnessMetrics

__all__ = [
    "CollapseMetrics",
    "RobustnessMetrics",
    "InformationMetrics",
    "plot_information",
    "GammaAnnealing",
    "TrainingPace",
    "default_schedule",
    "gamma_budget",
]
