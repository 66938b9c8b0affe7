"""`CollapseAccumulator`: collapse metrics of data that does not fit in memory.

Fed batch by batch; memory grows with the number of classes ``C`` and the
latent size ``d`` (per-class ``d x d`` second moments), never with ``N``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_lpc._validation import as_labels, as_latents, precision_of
from keras_lpc.metrics import collapse, geometry
from keras_lpc.metrics._stats import ClassStats, index_of

# Batches are buffered up to this many latent entries (128 MiB of float64) and
# folded in together, so that each class gets one large matrix product, not
# one small one per batch.
FLUSH_ELEMENTS = 1 << 24


class CollapseAccumulator:
    """Streaming form of `collapse_metrics`: two passes over batches, float64 throughout.

    **Pass 1** (`update`): per class ``c`` it keeps the count ``n_c``, a
    shift ``k_c`` (the class's mean in the first batch that holds it) and
    the shifted sums ``s_c = sum_{i in c} (z_i - k_c)`` and
    ``Q_c = sum_{i in c} (z_i - k_c)(z_i - k_c)^T`` (one symmetric rank-n_b
    update, BLAS ``dsyrk``, per class over buffered batches), so that

    ```
    mu_c = k_c + s_c / n_c;   S_c = Q_c - s_c s_c^T / n_c = sum_{i in c} (z_i - mu_c)(z_i - mu_c)^T
    ```

    The shift sits within a batch's sampling error of ``mu_c``, so the
    subtraction loses no precision even when the class has collapsed.
    ``Sigma_W = mean_c S_c / n_c`` and every class-mean metric equal those
    of `collapse_metrics` on the concatenated data (to rounding), as do
    ``mean_norm`` and ``norm_cv``. **Pass 2** (`update_samples`, optional):
    the same batches again for the per-sample metrics that need the final
    means: ``separation_ratio`` (the mean of `separation_ratio`; ``inf`` if
    any sample sits on its centroid) and ``ncc_agreement`` (when predictions
    are passed). Memory: ``O(C d^2 + batch d)``.

    Labels are non-negative integer class ids; classes never seen are
    ignored, as in the one-shot functions.

    Example:

    >>> import numpy as np
    >>> from keras_lpc.metrics import CollapseAccumulator, collapse_metrics
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 1000)
    >>> z = np.eye(3)[y] + 0.1 * rng.normal(size=(1000, 3))
    >>> acc = CollapseAccumulator()
    >>> for part in np.array_split(np.arange(1000), 7):
    ...     acc.update(z[part], y[part])
    >>> for part in np.array_split(np.arange(1000), 7):
    ...     acc.update_samples(z[part], y[part])
    >>> streamed, direct = acc.result(), collapse_metrics(z, y)
    >>> print(round(streamed["nc1"], 6) == round(direct["nc1"], 6), acc.count)
    True 1000
    """

    def __init__(self) -> None:
        self.count = 0
        self._dim: int | None = None
        self._counts = np.zeros(0, dtype=np.int64)
        self._shift = np.zeros((0, 0))
        self._sum = np.zeros((0, 0))
        self._m2 = np.zeros((0, 0, 0))  # shifted second moments Q_c
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # batches not yet folded in
        self._pending_rows = 0
        self._eps = 0.0  # machine epsilon of the coarsest dtype fed
        self._norm = np.zeros(3)  # count, mean, centred sum of squares of ||z||
        self._frozen: ClassStats | None = None
        self._ratio = np.zeros(3)  # sum of finite ratios, finite count, infinite count
        self._agree = np.zeros(2, dtype=np.int64)  # agreements, samples

    def _check(self, z: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        arr = as_latents(z)
        if self._dim is not None and arr.shape[1] != self._dim:
            raise ValueError(
                f"`z` must have {self._dim} features like the earlier batches. "
                f"Received: z with shape {arr.shape}"
            )
        lab = as_labels(labels, len(arr))
        if lab.size and lab.min() < 0:
            raise ValueError(
                f"`labels` must be non-negative class ids. Received: labels with min {lab.min()}"
            )
        return arr, lab

    def _grow(self, n_classes: int, dim: int) -> None:
        old = len(self._counts)
        if self._dim is None:
            self._dim = dim
            self._shift = np.zeros((0, dim))
            self._sum = np.zeros((0, dim))
            self._m2 = np.zeros((0, dim, dim))
        if n_classes > old:

            def grown(arr: np.ndarray) -> np.ndarray:
                out = np.zeros((n_classes, *arr.shape[1:]), dtype=arr.dtype)
                out[:old] = arr
                return out

            self._counts, self._shift = grown(self._counts), grown(self._shift)
            self._sum, self._m2 = grown(self._sum), grown(self._m2)

    def update(self, z: Any, labels: Any) -> None:
        """Pass 1: add a batch ``z`` (B, d) with integer ``labels`` (B,)."""
        if self._frozen is not None:
            raise ValueError(
                "`update` must not be called after `update_samples` (pass 2 has begun). "
                "Received: another pass-1 batch"
            )
        self._eps = max(self._eps, precision_of(z))
        arr, lab = self._check(z, labels)
        self._grow(int(lab.max()) + 1, arr.shape[1])
        self._pending.append((arr, lab))
        self._pending_rows += len(arr)
        if self._pending_rows * arr.shape[1] >= FLUSH_ELEMENTS:
            self._flush()
        norms = np.sqrt(np.einsum("ij,ij->i", arr, arr))
        n_a, mean_a, m2_a = self._norm
        n_b, mean_b = len(norms), norms.mean()
        n = n_a + n_b
        delta = mean_b - mean_a
        m2 = m2_a + ((norms - mean_b) ** 2).sum() + delta**2 * n_a * n_b / n
        self._norm = np.array([n, mean_a + delta * n_b / n, m2])
        self.count += len(arr)

    def _flush(self) -> None:
        """Fold the buffered batches into the per-class sums: one SYRK per class.

        ``Q_c += B_c^T B_c`` (``B_c``: the class's shifted rows) is a symmetric
        rank-``n_b`` update, so BLAS ``dsyrk`` forms one triangle only (half the
        multiply-adds of a general product); `stats` mirrors it.
        """
        from scipy.linalg.blas import dsyrk

        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, [], 0
        lab = np.concatenate([b for _, b in pending])
        order = np.argsort(lab, kind="stable")
        arr = np.concatenate([a for a, _ in pending])
        del pending  # the batches now live in `arr` only
        grouped = arr[order]  # our copy: shifted in place below
        del arr
        present, starts, sizes = np.unique(lab[order], return_index=True, return_counts=True)
        for c, start, size in zip(present, starts, sizes):  # a loop over classes
            block = grouped[start : start + size]
            if self._counts[c] == 0:
                self._shift[c] = block.mean(axis=0)
            block -= self._shift[c]
            self._sum[c] += block.sum(axis=0)
            # The transposed views are Fortran-ordered, so BLAS reads ``block`` and
            # accumulates into Q_c in place: the upper triangle of Q_c^T, i.e. the
            # lower triangle of Q_c (C order), is updated and the other left alone.
            dsyrk(1.0, block.T, beta=1.0, c=self._m2[c].T, overwrite_c=1)
            self._counts[c] += size

    def stats(self) -> ClassStats:
        """The `ClassStats` of everything seen in pass 1 (classes with samples only)."""
        self._flush()
        seen = np.flatnonzero(self._counts)
        if len(seen) < 2:
            raise ValueError(
                "`labels` must contain at least 2 classes over all batches. "
                f"Received: {len(seen)} class(es) in {self.count} samples"
            )
        counts = self._counts[seen]
        mean_shift = self._sum[seen] / counts[:, None]
        means = self._shift[seen] + mean_shift
        # S_c = Q_c - n_c m_c m_c^T with m_c = s_c / n_c, so without forming every S_c:
        # Sigma_W = (sum_c Q_c / n_c - sum_c m_c m_c^T) / C and tr S_c = tr Q_c - n_c |m_c|^2.
        q = self._m2 if len(seen) == len(self._counts) else self._m2[seen]
        weighted = np.tril(np.tensordot(1.0 / counts, q, axes=1))  # SYRK filled the lower half
        weighted += np.tril(weighted, -1).T
        sigma_w = (weighted - mean_shift.T @ mean_shift) / len(seen)
        traces = np.einsum("cii->c", q) - counts * np.einsum("cd,cd->c", mean_shift, mean_shift)
        variances = traces / counts
        global_mean = (means * counts[:, None]).sum(axis=0) / counts.sum()
        return ClassStats(
            seen.astype(np.int64), counts, means, global_mean, sigma_w, variances, self._eps
        )

    def update_samples(self, z: Any, labels: Any, predictions: Any = None) -> None:
        """Pass 2: feed the same data again for ``separation_ratio`` / ``ncc_agreement``."""
        if self._frozen is None:
            self._frozen = self.stats()
        stats = self._frozen
        arr, lab = self._check(z, labels)
        codes = index_of(stats.classes, lab)
        if np.any(codes < 0):
            raise ValueError(
                "`labels` of pass 2 must be classes seen in pass 1. "
                f"Received: labels {sorted(set(lab.tolist()) - set(stats.classes.tolist()))}"
            )
        preds = None if predictions is None else as_labels(predictions, len(arr), "predictions")
        ratio, nearest = geometry.separation_and_nearest(arr, codes, stats)
        ratio = ratio[~np.isnan(ratio)]
        finite = np.isfinite(ratio)
        self._ratio += [ratio[finite].sum(), finite.sum(), (~finite).sum()]
        if preds is not None:
            self._agree += [int(np.sum(stats.classes[nearest] == preds)), len(arr)]

    def result(self, include: Any = None) -> dict[str, float]:
        """The metrics so far, as `collapse_metrics` names them.

        Without pass 2, ``separation_ratio`` is left out of the defaults;
        ``ncc_agreement`` appears when predictions were given in pass 2.
        """
        given = {"ncc_agreement"} if self._agree[1] else set()
        names = collapse._check_include(include, given)
        if include is None and self._frozen is None:
            names.remove("separation_ratio")
        if "binarity" in names:
            raise ValueError(
                "`include` must not name 'binarity' when streaming (it fits on a sample). "
                "Received: include with 'binarity'"
            )
        for name, ready in (("separation_ratio", self._frozen), ("ncc_agreement", given)):
            if name in names and not ready:
                raise ValueError(
                    f"`include` names {name!r}, which needs pass 2 (`update_samples`"
                    f"{' with predictions' if name == 'ncc_agreement' else ''}). "
                    f"Received: include={include!r}"
                )
        stats = self._frozen if self._frozen is not None else self.stats()
        total, finite, infinite = self._ratio
        if infinite:
            ratio = np.array([np.inf])
        elif finite:
            ratio = np.array([total / finite])
        else:
            ratio = np.array([np.nan])
        n, mean, m2 = self._norm
        norms = (mean, float(np.sqrt(m2 / n) / mean) if mean > 0 else float("nan"))
        agreement = self._agree[0] / self._agree[1] if self._agree[1] else None
        return collapse.metrics_from_stats(stats, names, ratio, norms, agreement)
