"""Keras callbacks: thin adapters between `fit` and keras_lpc's pure functions."""

from keras_lpc.annealing.budget import default_schedule, gamma_budget
from keras_lpc.annealing.pace import TrainingPace
from keras_lpc.annealing.policies import Hold
from keras_lpc.callbacks._base import LatentMetricCallback, MetricCallback, ModelMetricCallback
from keras_lpc.callbacks.collapse_metrics import CollapseMetrics
from keras_lpc.callbacks.gamma_annealing import GammaAnnealing
from keras_lpc.callbacks.information_metrics import InformationMetrics, plot_information
from keras_lpc.callbacks.robustness_metrics import RobustnessMetrics

__all__ = [
    "CollapseMetrics",
    "GammaAnnealing",
    "Hold",
    "InformationMetrics",
    "LatentMetricCallback",
    "MetricCallback",
    "ModelMetricCallback",
    "RobustnessMetrics",
    "TrainingPace",
    "default_schedule",
    "gamma_budget",
    "plot_information",
]
