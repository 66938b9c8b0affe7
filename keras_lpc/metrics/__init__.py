"""Pure metric functions on arrays (NumPy, float64): collapse geometry,
misclassification detection and information-theoretic quantities."""

__all__: list[str] = []
