"""`certified_radius` and `certified_at`: certified lower bounds of the minimal perturbation."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_lpc._validation import check_float, check_int
from keras_lpc.robustness.certify._search import crossing
from keras_lpc.robustness.certify._setup import Setup, lipschitz_radius, radius_fn, spec

#: Default passes and relative precision of the radius search (IBP passes are cheap,
#: CROWN's are not: its search stops within 1 %, in about 4 to 7 passes).
STEPS = {"ibp": 30, "crown": 10}
RTOL = {"ibp": 1e-3, "crown": 1e-2}


@dataclass
class CertifiedRadiusResult:
    """What `certified_radius` certified.

    Attributes:
        per_sample: (N,) certified radius relative to the input, ``rho_n / ||x_n||``
            (in ``norm``, as `minimal_perturbation` reports); 0 where the input is
            misclassified (``y`` given) or nothing could be certified.
        distance: (N,) the certified radius ``rho_n`` in input units: no
            perturbation with ``||r|| < rho_n`` changes the prediction.
        score: mean of ``per_sample``.
        labels: (N,) the labels certified (``y``, or the clean predictions).
        predictions: (N,) the clean predictions.
        method: ``"lipschitz"``, ``"ibp"`` or ``"crown"``.
        norm: ``"l2"`` or ``"linf"``.
        seconds: wall time of the call.
        passes: most bound passes one batch made in the radius search (0 for
            ``"lipschitz"``, whose radius is closed-form).
        memory: the estimated peak memory in bytes (see ``max_memory``).
    """

    per_sample: np.ndarray
    distance: np.ndarray
    score: float
    labels: np.ndarray
    predictions: np.ndarray
    method: str
    norm: str
    seconds: float
    passes: int = 0
    memory: int = 0


def _relative(distance: np.ndarray, x: np.ndarray, norm: str) -> np.ndarray:
    flat = x.reshape(len(x), -1).astype("float64")
    size = np.linalg.norm(flat, ord=2 if norm == "l2" else np.inf, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(distance == 0, 0.0, distance / size)


def certified_radius(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    norm: str = "l2",
    method: str = "crown",
    rtol: float | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    max_memory: int | None = None,
) -> CertifiedRadiusResult:
    """Certified lower bound of each input's minimal adversarial perturbation.

    A radius ``rho_n`` is certified when no perturbation ``r`` with
    ``||r|| < rho_n`` changes the prediction: ``f_y(x + r) > f_j(x + r)`` for
    every class ``j != y``, ``f`` the pre-softmax scores (a final softmax is
    left out; it does not change the argmax). So ``rho_n <= ||r*_n|| <=`` the
    distance any verified attack finds (`minimal_perturbation`). Methods:

    * ``"lipschitz"`` (Tsuzuku, Sato & Sugiyama 2018): ``rho = min_j (f_y -
      f_j) / K[y, j]`` with ``K`` the Lipschitz constant of ``f_y - f_j``: the
      product of per-layer operator norms (power iteration, convolutions as
      operators) times each activation's ``max |f'|``, the last linear layers
      folded into each class pair (`_norms`). Closed form, one pass.
    * ``"ibp"`` (Gowal et al. 2018): intervals propagated layer by layer, the
      first layers exactly (``W x +- eps ||W_row||_*``), the specification
      ``f_y - f_j`` folded into the last linear layers; the largest ``eps``
      whose lower bound of every ``f_y - f_j`` stays positive.
    * ``"crown"`` (Zhang, Weng, Chen, Hsieh & Daniel 2018): linear bounds
      propagated backwards from the specification and from every nonlinear
      layer's input, each activation replaced by proved linear bounds (`_relax`);
      the tightest of the three and the slowest.

    IBP and CROWN search the radius in one compiled loop per batch (`_search`):
    each pass at ``eps`` certifies ``min(eps, c / d)``, and the passes stop when
    the bracket of the method's radius is within ``rtol`` (or after ``steps``).
    Every method is exact on a linear model: ``margin / ||w_y - w_j||_*``.
    Everything is computed in float32 (whatever the model's dtype policy).
    Distances are in ``norm`` (L2 or L-inf) and ``per_sample`` is relative
    to ``||x_n||`` in the same norm. Valid inputs are not clipped: the
    certificate covers the whole ball, so it holds for any ``clip``.

    Args:
        model: a Sequential or functional Keras classifier (nested models too;
            the layers of `keras_lpc.robustness.certify._convert`).
        x: inputs, a batch matching the model's input shape.
        y: optional labels (N,) or one-hot rows; misclassified inputs get 0.
        norm: ``"l2"`` or ``"linf"``.
        method: ``"lipschitz"``, ``"ibp"`` or ``"crown"``.
        rtol: relative precision of the radius search (default 1e-3 for IBP,
            1e-2 for CROWN).
        steps: most bound passes per batch (default 30 for IBP, 10 for CROWN).
        batch_size: most inputs per compiled call (default 1024, 256, 64);
            CROWN may take fewer to stay within ``max_memory``.
        max_memory: bytes the bounds may use (default a quarter of the
            machine's memory); CROWN takes its neurons in chunks to fit.

    Returns:
        A `CertifiedRadiusResult`.

    Raises:
        ValueError: unknown ``norm`` or ``method``, bad ``x``/``y``, a layer no
            method can handle (named, with its class), a subclassed model, or a
            model whose bounds cannot fit in ``max_memory`` (with the estimate).
        TypeError: ``model`` is not a Keras model; non-numeric arguments.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import certified_radius
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> # f_0 - f_1 = 2 x_0: the boundary x_0 = 0 lies 3 away from (3, 4)
    >>> res = certified_radius(model, np.array([[3.0, 4.0]]), method="ibp")
    >>> print(round(float(res.distance[0]), 4), round(float(res.per_sample[0]), 4))
    3.0 0.6

    References:
        Tsuzuku, Sato & Sugiyama, "Lipschitz-Margin Training", NeurIPS 2018.
        Gowal et al., "On the Effectiveness of Interval Bound Propagation for
        Training Verifiably Robust Models", arXiv:1810.12715, 2018.
        Zhang, Weng, Chen, Hsieh & Daniel, "Efficient Neural Network Robustness
        Certification with General Activation Functions", NeurIPS 2018.
    """
    start = time.perf_counter()
    setup = Setup(model, x, y, norm, method, batch_size, max_memory)
    rtol = RTOL.get(setup.method, 1e-3) if rtol is None else rtol
    rtol = check_float("rtol", rtol, strictly_positive=True)
    steps = STEPS.get(setup.method, 1) if steps is None else check_int("steps", steps, minimum=1)
    passes = 0
    if setup.method == "lipschitz":
        distance = lipschitz_radius(setup)
    else:
        compiled = setup.compiled(("radius", rtol, steps), radius_fn(setup, rtol, steps))
        distance, counts = setup.run(compiled)
        distance = distance.astype("float64")
        passes = int(np.max(counts)) + 1
    distance = np.where(setup.preds == setup.labels, distance, 0.0)
    per_sample = _relative(distance, setup.x, setup.norm)
    return CertifiedRadiusResult(
        per_sample=per_sample,
        distance=distance,
        score=float(np.mean(per_sample)),
        labels=setup.labels,
        predictions=setup.preds,
        method=setup.method,
        norm=setup.norm,
        seconds=time.perf_counter() - start,
        passes=passes,
        memory=setup.plan.bytes,
    )


def certified_at(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    eps: float | np.ndarray,
    norm: str = "l2",
    method: str = "crown",
    batch_size: int | None = None,
    max_memory: int | None = None,
) -> np.ndarray:
    """Whether each input is certified robust at radius ``eps``: one bound pass, no search.

    ``True`` where every ``f_y - f_j`` (``j != y``) stays positive on the whole
    ball ``||r|| <= eps`` by the chosen bound (see `certified_radius`), so no
    perturbation that small changes the prediction; ``False`` where the bound
    cannot tell, and for misclassified inputs (``y`` given). The certified
    accuracy at ``eps`` is its mean. Cheap enough for a training callback: one
    pass instead of the search's ten or so.

    Args:
        model: a Keras classifier (see `certified_radius`).
        x: inputs.
        y: optional labels (N,) or one-hot rows.
        eps: the radius in input units (a number >= 0, or one per input).
        norm: ``"l2"`` or ``"linf"``.
        method: ``"lipschitz"``, ``"ibp"`` or ``"crown"``.
        batch_size: most inputs per compiled call.
        max_memory: bytes the bounds may use (see `certified_radius`).

    Returns:
        (N,) booleans.

    Raises:
        ValueError: a negative or non-finite ``eps``, or as `certified_radius`.

    Example:

    >>> import keras, numpy as np
    >>> from keras_lpc.robustness import certified_at
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    >>> model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    >>> certified_at(model, np.array([[3.0, 4.0], [1.0, 4.0]]), eps=2.0, method="crown")
    array([ True, False])
    """
    setup = Setup(model, x, y, norm, method, batch_size, max_memory)
    radius = np.asarray(eps, dtype="float64")
    if radius.ndim == 0:
        check_float("eps", float(radius), minimum=0.0)
        radius = np.full(len(setup.x), float(radius))
    elif radius.shape != (len(setup.x),) or not np.all(np.isfinite(radius)) or np.any(radius < 0):
        raise ValueError(
            "`eps` must be a number >= 0 or one finite value >= 0 per input. "
            f"Received: eps with shape {radius.shape}"
        )
    if setup.method == "lipschitz":
        ok = lipschitz_radius(setup) > radius
    else:
        g, classes, ids = setup.graph, setup.graph.classes, setup.ids

        def fn(x0: Any, labels: Any, eps: Any, *radii_list: Any) -> Any:
            radii = dict(zip(ids, radii_list))
            c, d = setup.passes(eps, spec(labels, classes), x0, g.forward(x0), radii)
            return crossing(c, d, labels, classes) > eps

        (ok,) = setup.run(setup.compiled(("at",), fn), radius.astype("float32"))
    return np.asarray(ok, bool) & (setup.preds == setup.labels)
