"""Pure metric functions on arrays (NumPy, float64): collapse geometry,
misclassification detection and information-theoretic quantities."""

from keras_lpc.metrics.collapse import (
    cdnv,
    collapse_metrics,
    equiangularity,
    equinorm,
    max_angle_deviation,
    nc1,
    ncc_agreement,
    self_duality,
)
from keras_lpc.metrics.geometry import (
    binarity,
    hypercube_alignment,
    mean_norm,
    norm_cv,
    separation_ratio,
    separation_ratio_per_sample,
)
from keras_lpc.metrics.information import (
    information_metrics,
    interaction_information,
    interaction_information_per_feature,
    kl_entropy,
    mutual_information,
)
from keras_lpc.metrics.misclassification import (
    mahalanobis_score,
    max_softmax_score,
    misclassification_auroc,
)
from keras_lpc.metrics.streaming import CollapseAccumulator

__all__ = [
    "mutual_information",
    "kl_entropy",
    "interaction_information",
    "interaction_information_per_feature",
    "information_metrics",
    "CollapseAccumulator",
    "binarity",
    "cdnv",
    "collapse_metrics",
    "equiangularity",
    "equinorm",
    "hypercube_alignment",
    "mahalanobis_score",
    "max_angle_deviation",
    "max_softmax_score",
    "mean_norm",
    "misclassification_auroc",
    "nc1",
    "ncc_agreement",
    "norm_cv",
    "self_duality",
    "separation_ratio",
    "separation_ratio_per_sample",
]
