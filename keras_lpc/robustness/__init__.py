"""Robustness of any Keras model: DeepFool, Lipschitz proxy, FGSM and PGD."""

__all__: list[str] = []
