"""`collapse_metrics`: every cheap collapse-geometry metric in one pass (NumPy, float64).

The metrics themselves live by job: NC1 and CDNV in
`keras_lpc.metrics.variability`, NC2-NC4 in `keras_lpc.metrics.mean_geometry`,
separation, norms and binarity in `keras_lpc.metrics.geometry`; they are
importable from here too (``keras_lpc.metrics.collapse.nc1``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_lpc._validation import as_labels, check_choice
from keras_lpc.metrics import geometry
from keras_lpc.metrics._stats import ClassStats, prepare
from keras_lpc.metrics.mean_geometry import (
    equiangularity,
    equiangularity_from_stats,
    equinorm,
    equinorm_from_stats,
    max_angle_deviation,
    max_angle_deviation_from_stats,
    ncc_agreement,
    nearest_class,
    self_duality,
    self_duality_from_stats,
)
from keras_lpc.metrics.variability import (
    NC1_VARIANTS,  # noqa: F401 (importable from here, as before the split)
    cdnv,
    cdnv_from_stats,
    nc1,
    nc1_from_stats,
)

DEFAULT_METRICS = (
    "nc1",
    "nc1_trace_ratio",
    "cdnv",
    "equinorm",
    "equiangularity",
    "max_angle_deviation",
    "separation_ratio",
    "norm_cv",
    "mean_norm",
    "hypercube_alignment",
)
OPTIONAL_METRICS = ("nc1_dim", "ncc_agreement", "self_duality", "binarity")
BINARITY_NAMES = ("binarity_log_likelihood", "binarity_mean_std", "binarity_peak_distance")


def _check_include(include: Any, optional_given: set[str]) -> list[str]:
    if include is None:
        return list(DEFAULT_METRICS) + sorted(optional_given)
    names = [include] if isinstance(include, str) else list(include)
    allowed = DEFAULT_METRICS + OPTIONAL_METRICS
    for name in names:
        check_choice("include", name, allowed)
    return names


def metrics_from_stats(
    stats: ClassStats,
    names: list[str],
    ratio: np.ndarray | None = None,
    norms: tuple[float, float] | None = None,
    agreement: float | None = None,
    classifier_kernel: Any = None,
) -> dict[str, float]:
    """The dict of `collapse_metrics` from statistics and per-sample results."""
    table = {
        "nc1": lambda: nc1_from_stats(stats, "papyan"),
        "nc1_dim": lambda: nc1_from_stats(stats, "dim"),
        "nc1_trace_ratio": lambda: nc1_from_stats(stats, "trace_ratio"),
        "cdnv": lambda: cdnv_from_stats(stats),
        "equinorm": lambda: equinorm_from_stats(stats),
        "equiangularity": lambda: equiangularity_from_stats(stats),
        "max_angle_deviation": lambda: max_angle_deviation_from_stats(stats),
        "separation_ratio": lambda: geometry.reduce_ratio(ratio, "mean"),
        "mean_norm": lambda: norms[0],
        "norm_cv": lambda: norms[1],
        "hypercube_alignment": lambda: geometry.alignment_of_means(stats.means),
        "ncc_agreement": lambda: agreement,
        "self_duality": lambda: self_duality_from_stats(stats, classifier_kernel),
    }
    return {name: float(table[name]()) for name in names if name != "binarity"}


def collapse_metrics(
    z: Any,
    labels: Any,
    *,
    include: Any = None,
    predictions: Any = None,
    classifier_kernel: Any = None,
) -> dict[str, float]:
    """All cheap collapse-geometry metrics of ``z`` in one pass over the data.

    Computes the class statistics once and returns ``{name: value}`` for
    ``nc1``, ``nc1_trace_ratio``, ``cdnv``, ``equinorm``,
    ``equiangularity``, ``max_angle_deviation``, ``separation_ratio``,
    ``norm_cv``, ``mean_norm`` and ``hypercube_alignment`` (each as its own
    function documents), plus ``ncc_agreement`` when ``predictions`` is
    given and ``self_duality`` when ``classifier_kernel`` is given. Opt-in
    through ``include``: ``nc1_dim`` and ``binarity`` (the three
    ``binarity_*`` values of `binarity`, a mixture fit per dimension).

    Args:
        z: latents, shape ``(N, d)``.
        labels: integer class ids, shape ``(N,)`` (at least two classes).
        include: names to compute (``None``: the defaults above).
        predictions: predicted class ids for ``ncc_agreement``.
        classifier_kernel: ``(d, K)`` kernel for ``self_duality``.

    Returns:
        A dict of floats.

    Raises:
        ValueError: as `nc1`; an unknown name in ``include``; a name that
            needs ``predictions`` / ``classifier_kernel`` without it.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import collapse_metrics
    >>> z = np.array([[1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [-1.0, -1.0]])
    >>> out = collapse_metrics(z, [0, 0, 1, 1])
    >>> print(out["nc1"], out["separation_ratio"], round(out["hypercube_alignment"], 6))
    0.0 inf 1.0
    """
    given = set()
    if predictions is not None:
        given.add("ncc_agreement")
    if classifier_kernel is not None:
        given.add("self_duality")
    names = _check_include(include, given)
    for name, needed in (("ncc_agreement", predictions), ("self_duality", classifier_kernel)):
        if name in names and needed is None:
            arg = "predictions" if name == "ncc_agreement" else "classifier_kernel"
            raise ValueError(f"`{arg}` must be given to compute {name!r}. Received: {arg}=None")
    arr, codes, stats = prepare(z, labels)
    ratio = geometry.sample_separation(arr, codes, stats) if "separation_ratio" in names else None
    norms = None
    if "mean_norm" in names or "norm_cv" in names:
        lengths = np.linalg.norm(arr, axis=1)
        mean = float(lengths.mean())
        norms = (mean, float(lengths.std() / mean) if mean > 0 else float("nan"))
    agreement = None
    if "ncc_agreement" in names:
        preds = as_labels(predictions, len(arr), "predictions")
        agreement = float(np.mean(nearest_class(arr, stats) == preds))
    out = metrics_from_stats(stats, names, ratio, norms, agreement, classifier_kernel)
    if "binarity" in names:
        values = geometry.binarity(arr)
        out.update({f"binarity_{key}": value for key, value in values.items()})
    return out


__all__ = [
    "cdnv",
    "collapse_metrics",
    "equiangularity",
    "equinorm",
    "max_angle_deviation",
    "nc1",
    "ncc_agreement",
    "self_duality",
]
