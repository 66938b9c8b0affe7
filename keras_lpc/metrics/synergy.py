"""Synergy of the Generalized Information Bottleneck: interaction information (nats).

``II(z_k; z_{-k}; y) = I(z_k, z_{-k}; y) - I(z_k; y) - I(z_{-k}; y)`` for each
latent feature ``z_k``, its ``2 d + 1`` mutual-information terms estimated
in one shared k-NN search (`keras_lpc.metrics.mutual_information`'s
estimators). Part of `keras_lpc.metrics.information`, importable from there.

References:
    Ross (2014), "Mutual information between discrete and continuous data
    sets", PLoS ONE 9(2). Westphal, Hailes & Musolesi (2025), "A Generalized
    Information Bottleneck Theory of Deep Learning".
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from keras_lpc.metrics._estimators import mi_knn_spaces, mi_plugin, prepare

__all__ = ["interaction_information", "interaction_information_per_feature"]


def interaction_information(
    z: Any,
    y: Any,
    k: int = 3,
    features: Any = None,
    max_samples: int | None = None,
    per_feature: bool = False,
    method: str = "knn",
    n_clusters: int | None = None,
    seed: int = 0,
) -> float:
    """Synergy of the Generalized Information Bottleneck: mean interaction information.

    For each latent feature ``z_k`` and the remaining features ``z_{-k}``:

    ```
    II(z_k; z_{-k}; y) = I(z_k, z_{-k}; y) - I(z_k; y) - I(z_{-k}; y)
    synergy            = mean over k of II(z_k; z_{-k}; y)
    ```

    in nats. Positive: information about ``y`` available only from the
    features jointly (synergy); negative: the same information held by
    ``z_k`` and by the rest (redundancy). ``I(z; y) = I(z_k, z_{-k}; y)`` is
    estimated once; each term uses `mutual_information` with the same
    ``k``/``method``, so ``2 d + 1`` estimates in all (``2 |features| + 1``).
    The per-feature values come from `interaction_information_per_feature`.

    Args:
        z: latents, shape ``(N, d)`` with ``d >= 2``.
        y: labels, shape ``(N,)`` or one-hot ``(N, C)``.
        k: neighbour order, an integer in ``[1, N)``.
        features: indices of the features to average over (``None``: all).
        max_samples: estimate on a random subset of this size (``None``: all).
        per_feature: deprecated; ``True`` returned ``(mean, values)``: use
            `interaction_information_per_feature` instead.
        method: ``"knn"`` or ``"plugin"`` (see `mutual_information`).
        n_clusters: clusters for ``method="plugin"``.
        seed: seed of the subset and of k-means.

    Returns:
        The mean interaction information in nats, always a float.

    Raises:
        TypeError: ``z`` is not numeric, or an integer argument is not one.
        ValueError: ``d < 2``, bad or repeated ``features``, shapes disagree,
            ``k >= N``, or an unknown ``method``.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import interaction_information
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(2000, 2))
    >>> y = (z[:, 0] > 0) ^ (z[:, 1] > 0)  # XOR: pure synergy, +ln 2
    >>> print(round(interaction_information(z, y), 1))  # k-NN blurs the XOR edges
    0.6
    """
    values = interaction_information_per_feature(
        z, y, k, features, max_samples, method=method, n_clusters=n_clusters, seed=seed
    )
    mean = float(np.mean(values))
    if per_feature:
        warnings.warn(
            "interaction_information(per_feature=True) is deprecated and will be removed; "
            "use interaction_information_per_feature(...) for the per-feature values.",
            DeprecationWarning,
            stacklevel=2,
        )
        return (mean, values)  # type: ignore[return-value]
    return mean


def interaction_information_per_feature(
    z: Any,
    y: Any,
    k: int = 3,
    features: Any = None,
    max_samples: int | None = None,
    *,
    method: str = "knn",
    n_clusters: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Interaction information ``II(z_k; z_{-k}; y)`` of each feature ``k`` (nats).

    ```
    II(z_k; z_{-k}; y) = I(z_k, z_{-k}; y) - I(z_k; y) - I(z_{-k}; y)
    ```

    The values whose mean is `interaction_information`, with the same
    arguments, estimators and edge cases.

    Args:
        z: latents, shape ``(N, d)`` with ``d >= 2``.
        y: labels, shape ``(N,)`` or one-hot ``(N, C)``.
        k: neighbour order, an integer in ``[1, N)``.
        features: indices of the features (``None``: all, in order).
        max_samples: estimate on a random subset of this size (``None``: all).
        method: ``"knn"`` or ``"plugin"`` (see `mutual_information`).
        n_clusters: clusters for ``method="plugin"``.
        seed: seed of the subset and of k-means.

    Returns:
        A float64 array of shape ``(len(features),)``, one value per feature.

    Raises:
        TypeError, ValueError: as `interaction_information`.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import interaction_information_per_feature
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 2000)        # both features copy y: -ln 2 each
    >>> z = y[:, None] + 0.01 * rng.normal(size=(2000, 2))
    >>> print(np.round(interaction_information_per_feature(z, y), 2))
    [-0.69 -0.69]
    """
    arr, labels, k, method, n_clusters = prepare(z, y, k, method, n_clusters, max_samples, seed)
    d = arr.shape[1]
    if d < 2:
        raise ValueError(
            f"`z` must have at least 2 features for interaction information. "
            f"Received: z with {d} feature"
        )
    if features is None:
        index = np.arange(d)
    else:
        index = np.asarray(features).reshape(-1)
        if (
            index.size == 0
            or not np.issubdtype(index.dtype, np.integer)
            or index.min() < -d
            or index.max() >= d
            or len(np.unique(index % d)) != index.size
        ):
            raise ValueError(
                f"`features` must be distinct integer indices in [0, {d}). "
                f"Received: features={features!r}"
            )
        index = index % d

    spaces = [np.arange(d)]
    spaces += [np.array([j]) for j in index] + [np.delete(np.arange(d), j) for j in index]
    if method == "knn":  # every space in one call: one shared bound on the radii
        mi = mi_knn_spaces(arr, labels, k, spaces)
    else:
        mi = np.array([mi_plugin(arr[:, s], labels, n_clusters, seed) for s in spaces])
    joint, alone, rest = mi[0], mi[1 : 1 + len(index)], mi[1 + len(index) :]
    return joint - alone - rest
