"""Keras callbacks: thin adapters between `fit` and keras_lpc's pure functions."""

from keras_lpc.callbacks.gamma_annealing import GammaAnnealing, default_schedule

__all__ = ["GammaAnnealing", "default_schedule"]
