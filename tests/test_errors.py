"""The error reference: every bad input listed in docs/errors.md, and the exact error it raises.

`ROWS` is the single source of the page and of these tests: each row is a
call as a user would type it, the exception type and the full message.
`tests/make_errors_doc.py` renders `SETUP` and `ROWS` into docs/errors.md;
`test_doc_lists_every_row` fails when the page and the rows differ.

A row whose call starts with ``keras-lpc `` is a command line: it must exit
with status 2 and print the message as the last line of stderr.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
from pathlib import Path
from typing import NamedTuple

import keras
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "errors.md"


class Row(NamedTuple):
    """One documented bad input."""

    area: str  # section of the page
    call: str  # Python expression (names from SETUP) or a `keras-lpc ...` command line
    error: type[BaseException]  # SystemExit for command lines (exit status 2)
    message: str  # the full message (for command lines: the last stderr line)


# Names the calls use, each with the code that defines it. A row runs the
# blocks of the names it mentions; the page shows all of them.
SETUP: dict[str, str] = {
    "imports": (
        "import keras\n"
        "import numpy as np\n"
        "from keras_lpc import (CollapseMetrics, GammaAnnealing, InformationMetrics,\n"
        "    LatentPointCollapse, RobustnessMetrics, annealing, datasets, demo, latents,\n"
        "    metrics, optimizers, plotting, readout, robustness, schedules, tuning, with_lpc)"
    ),
    "data": (
        "x = np.zeros((4, 3), 'float32')  # 4 inputs with 3 features\n"
        "y = np.array([0, 1, 0, 1])  # their labels\n"
        "z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # latents, d = 2"
    ),
    "model": (
        "model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name='head')],"
        " name='dense')\n"
        "model.compile('sgd', keras.losses.SparseCategoricalCrossentropy(from_logits=True))"
    ),
    "lpc_model": (
        "lpc_model = keras.Sequential(\n"
        "    [keras.Input((3,)), LatentPointCollapse(2, name='lpc'),"
        " keras.layers.Dense(2, name='head')],\n"
        "    name='lpc_model',\n"
        ")\n"
        "lpc_model.compile('sgd', keras.losses.SparseCategoricalCrossentropy(from_logits=True))"
    ),
    "hp": "import keras_tuner\nhp = keras_tuner.HyperParameters()",
}

LAYER = "Layer: `LatentPointCollapse`"
SCHEDULES = "Schedules: `keras_lpc.schedules`"
ANNEALING = "Callback: `GammaAnnealing`"
CALLBACKS = "Metric callbacks and their data"
METRICS = "Metric functions: `keras_lpc.metrics`"
ROBUSTNESS = "Attacks and robustness: `keras_lpc.robustness`"
OPTIMIZERS = "Optimizers: `keras_lpc.optimizers`"
DATASETS = "Datasets: `keras_lpc.datasets`"
TUNING = "Tuning: `keras_lpc.tuning`"
DEMO = "Demo and command line"
PLOTTING = "Plotting: `keras_lpc.plotting`"
SURGERY = "Adding LPC to a model: `keras_lpc.with_lpc`"

ROWS: tuple[Row, ...] = (
    # -- layer
    Row(
        LAYER,
        "LatentPointCollapse(dim=True)",
        TypeError,
        "`dim` must be an integer >= 1. Received: dim=True",
    ),
    Row(
        LAYER,
        "LatentPointCollapse(dim=8, gamma=float('inf'))",
        ValueError,
        "`gamma` must be a finite number. Received: gamma=inf",
    ),
    Row(
        LAYER,
        "LatentPointCollapse(dim=8, kernel_initializer='nope')",
        ValueError,
        "`kernel_initializer` must be a Keras initializer, its name or its config. "
        "Received: kernel_initializer='nope'",
    ),
    Row(
        LAYER,
        "LatentPointCollapse(dim=8, bias_regularizer='l3')",
        ValueError,
        "`bias_regularizer` must be a Keras regularizer, its name or its config. "
        "Received: bias_regularizer='l3'",
    ),
    # -- schedules
    Row(
        SCHEDULES,
        "schedules.Constant(-1.0)",
        ValueError,
        "`value` must be a number >= 0. Received: value=-1.0",
    ),
    Row(
        SCHEDULES,
        "schedules.Exponential(initial=0.0)",
        ValueError,
        "`initial` must be a positive number. Received: initial=0.0",
    ),
    Row(
        SCHEDULES,
        "schedules.Exponential(initial=1.0, maximum=0.5)",
        ValueError,
        "`maximum` must be a number >= 1. Received: maximum=0.5",
    ),
    Row(
        SCHEDULES,
        "schedules.TwoPhaseExponential(factor=1.0)",
        ValueError,
        "`factor` must be a number > 1. Received: factor=1.0",
    ),
    Row(
        SCHEDULES,
        "schedules.TwoPhaseExponential(second_factor=0.5)",
        ValueError,
        "`second_factor` must be a number > 1. Received: second_factor=0.5",
    ),
    Row(
        SCHEDULES,
        "schedules.Linear(0.0, 1.0, steps=0)",
        ValueError,
        "`steps` must be an integer >= 1. Received: steps=0",
    ),
    Row(
        SCHEDULES,
        "schedules.Polynomial(0.0, 1e3, steps=10, power=-2)",
        ValueError,
        "`power` must be a positive number. Received: power=-2.0",
    ),
    Row(
        SCHEDULES,
        "schedules.Cosine(-1.0, 1.0, steps=10)",
        ValueError,
        "`start` must be a number >= 0. Received: start=-1.0",
    ),
    Row(
        SCHEDULES,
        "schedules.Join([schedules.Constant(1.0)], boundaries=[5])",
        ValueError,
        "`boundaries` must have one entry fewer than `schedules` (0). Received: boundaries=[5]",
    ),
    Row(
        SCHEDULES,
        "schedules.Exponential()(float('nan'))",
        ValueError,
        "`count` must be a finite number >= 0. Received: count=nan",
    ),
    Row(
        SCHEDULES,
        "schedules.get([1, 2])",
        TypeError,
        "`schedule` must be a keras_lpc.schedules.GammaSchedule, a number or a serialized "
        "schedule. Received: schedule=[1, 2]",
    ),
    Row(
        SCHEDULES,
        "schedules.ops_value(abs, 1.0)",
        TypeError,
        "`schedule` must be a keras_lpc schedule or a keras LearningRateSchedule to be "
        "evaluated in keras.ops. Received: schedule=<built-in function abs>",
    ),
    Row(
        SCHEDULES,
        "schedules.gamma_budget(-1, 1e-3)",
        ValueError,
        "`steps` must be a number >= 0. Received: steps=-1.0",
    ),
    Row(
        SCHEDULES,
        "schedules.default_schedule(-1.0)",
        ValueError,
        "`maximum` must be a number >= 0. Received: maximum=-1.0",
    ),
    # -- GammaAnnealing
    Row(
        ANNEALING,
        "GammaAnnealing(unit='batch')",
        ValueError,
        "`unit` must be one of 'step', 'epoch'. Received: unit='batch'",
    ),
    Row(
        ANNEALING,
        "GammaAnnealing(schedule=True)",
        TypeError,
        "`schedule` must be a schedule, a number or a callable. Received: schedule=True",
    ),
    Row(
        ANNEALING,
        "GammaAnnealing(policy='fast')",
        TypeError,
        "`policy` must be 'auto', None, a keras_lpc.annealing.Policy (Hold, TrainingPace) or a "
        "list of them. Received: policy='fast'",
    ),
    Row(
        ANNEALING,
        "GammaAnnealing(ramp_fraction='late')",
        ValueError,
        "`ramp_fraction` must be 'auto', None or a number in (0, 1]. Received: ramp_fraction='late'",
    ),
    Row(
        ANNEALING,
        "GammaAnnealing(schedules.Exponential(1.0, 0.5), ramp_fraction=0.5)",
        ValueError,
        "`ramp_fraction` stretches a schedule that settles (a finite `span`). Received: "
        "ramp_fraction=0.5 with schedule=Exponential(initial=1.0, factor=0.5, every=1, "
        "maximum=1000000.0)",
    ),
    Row(
        ANNEALING,
        "GammaAnnealing(max_gamma='big')",
        ValueError,
        "`max_gamma` must be 'auto' or a number > 0. Received: max_gamma='big'",
    ),
    Row(
        ANNEALING,
        "annealing.Hold(monitor=3)",
        TypeError,
        "`monitor` must be a metric name. Received: monitor=3",
    ),
    Row(
        ANNEALING,
        "annealing.Hold(mode='up')",
        ValueError,
        "`mode` must be one of 'auto', 'max', 'min'. Received: mode='up'",
    ),
    Row(
        ANNEALING,
        "annealing.Hold(min_delta=-1.0)",
        ValueError,
        "`min_delta` must be a number >= 0. Received: min_delta=-1.0",
    ),
    Row(
        ANNEALING,
        "annealing.Hold(baseline='chance')",
        ValueError,
        "`baseline` must be 'auto', None or a number. Received: baseline='chance'",
    ),
    Row(
        ANNEALING,
        "annealing.Hold(fraction=1.5)",
        ValueError,
        "`fraction` must be in [0, 1]. Received: fraction=1.5",
    ),
    Row(
        ANNEALING,
        "annealing.TrainingPace(retreat=1.5)",
        ValueError,
        "`retreat` must be in [0, 1]. Received: retreat=1.5",
    ),
    Row(
        ANNEALING,
        "annealing.TrainingPace(backoff=-0.5)",
        ValueError,
        "`backoff` must be a number >= 0. Received: backoff=-0.5",
    ),
    Row(
        ANNEALING,
        "annealing.TrainingPace(fast=0.0)",
        ValueError,
        "`fast` must be a positive number. Received: fast=0.0",
    ),
    Row(
        ANNEALING,
        "annealing.TrainingPace(floor=2.0)",
        ValueError,
        "`floor` must be in (0, 1]. Received: floor=2.0",
    ),
    Row(
        ANNEALING,
        "annealing.TrainingPace().set_state((1.0,))",
        ValueError,
        "`state` must be a PaceState (or the 5 floats of an earlier version). "
        "Received: state=(1.0,)",
    ),
    Row(
        ANNEALING,
        "schedules.value(lambda count: -1.0, 0)",
        ValueError,
        "`schedule` must return a finite number >= 0. Received: schedule(0)=-1.0",
    ),
    Row(
        ANNEALING,
        "schedules.value(lambda count: 'high', 0)",
        TypeError,
        "`schedule` must return a number. Received: schedule(0)='high'",
    ),
    Row(
        ANNEALING,
        "model.fit(x, y, callbacks=[GammaAnnealing()], verbose=0)",
        ValueError,
        "`model` must contain at least one keras_lpc.LatentPointCollapse layer. "
        "Received: model='dense' with none",
    ),
    Row(
        ANNEALING,
        "lpc_model.fit(x, y, callbacks=[GammaAnnealing(layers='head')], verbose=0)",
        ValueError,
        "`layers` must name LatentPointCollapse layers of the model (available: ['lpc']). "
        "Received: layers='head'",
    ),
    # -- metric callbacks
    Row(
        CALLBACKS,
        "CollapseMetrics(None)",
        TypeError,
        "`data` must be a pair (x, y) of arrays, a tf.data.Dataset or a keras.utils.PyDataset. "
        "Received: data of type NoneType",
    ),
    Row(
        CALLBACKS,
        "CollapseMetrics((x, y, y))",
        ValueError,
        "`data` must be a pair (x, y). Received: data of length 3",
    ),
    Row(
        CALLBACKS,
        "CollapseMetrics((x[:0], y[:0]))",
        ValueError,
        "`data` must contain at least one sample. Received: len(x)=0",
    ),
    Row(
        CALLBACKS,
        "CollapseMetrics((x, y), max_samples=0)",
        ValueError,
        "`max_samples` must be an integer >= 1. Received: max_samples=0",
    ),
    Row(
        CALLBACKS,
        "CollapseMetrics((x, y), prefix=None)",
        TypeError,
        "`prefix` must be a string. Received: prefix=None",
    ),
    Row(
        CALLBACKS,
        "CollapseMetrics((x, y), include=['ncc_agreement'])",
        ValueError,
        "`include` must name metrics computable from latents and labels alone. "
        "Received: include=['ncc_agreement']",
    ),
    Row(
        CALLBACKS,
        "lpc_model.fit(x, y, callbacks=[CollapseMetrics((x, y), layer='head')], verbose=0)",
        ValueError,
        "`layer` must name LatentPointCollapse layers of the model (available: ['lpc']). "
        "Received: layer='head'",
    ),
    Row(
        CALLBACKS,
        "RobustnessMetrics((x, y), every=0)",
        ValueError,
        "`every` must be an integer >= 1. Received: every=0",
    ),
    Row(
        CALLBACKS,
        "RobustnessMetrics((x, y), pgd_eps=[0.1, -0.1])",
        ValueError,
        "`pgd_eps` must be a number >= 0. Received: pgd_eps=-0.1",
    ),
    Row(
        CALLBACKS,
        "RobustnessMetrics((x, y), certify='alpha')",
        ValueError,
        "`certify` must be one of 'crown', 'ibp', 'lipschitz'. Received: certify='alpha'",
    ),
    Row(
        CALLBACKS,
        "RobustnessMetrics((x, y), certify='crown', certify_eps=0.0)",
        ValueError,
        "`certify_eps` must be a positive number. Received: certify_eps=0.0",
    ),
    Row(
        CALLBACKS,
        "CollapseMetrics((x, y + 0.5), labels='true')",
        ValueError,
        "`data`: `y` must hold integer class ids. "
        "Received: y with dtype float64 (first values [0.5, 1.5, 0.5])",
    ),
    Row(
        CALLBACKS,
        "lpc_model.fit(x, y, callbacks=[RobustnessMetrics((x, y + 10))], verbose=0)",
        ValueError,
        "`data`: `y` must hold labels in [0, 2) for the model's 2 outputs. "
        "Received: y with values in [10, 11]",
    ),
    Row(
        CALLBACKS,
        "lpc_model.fit(x, y, callbacks=[InformationMetrics((x, np.eye(3)[y]))], verbose=0)",
        ValueError,
        "`data`: `y` must hold one-hot rows of width 2 (the model's outputs). "
        "Received: y with shape (4, 3)",
    ),
    Row(
        CALLBACKS,
        "lpc_model.fit(x, y, callbacks=[CollapseMetrics((y, x))], verbose=0)",
        ValueError,
        "`data` must be (x, y) with x of shape (N, 3) to match the model's input "
        "(the pair looks like (y, x): pass (x, y)). Received: x with shape (4,) and y with "
        "shape (4, 3)",
    ),
    Row(
        CALLBACKS,
        "RobustnessMetrics((y, x - 1))",
        ValueError,
        "`data` must be (x, y) with y integer labels or one-hot rows in [0, 1] (is the pair "
        "in (y, x) order?). Received: y with shape (4, 3) and values in [-1, -1]",
    ),
    Row(
        CALLBACKS,
        "latents(model, x)",
        ValueError,
        "`model` must contain at least one keras_lpc.LatentPointCollapse layer. "
        "Received: model='dense' with none",
    ),
    Row(
        CALLBACKS,
        "latents(lpc_model, x, batch_size=0)",
        ValueError,
        "`batch_size` must be an integer >= 1. Received: batch_size=0",
    ),
    Row(
        CALLBACKS,
        "readout.latents_and_outputs(lpc_model, np.zeros((0, 3)))",
        ValueError,
        "`x` must be a non-empty batch of inputs. Received: x with shape (0, 3)",
    ),
    Row(
        CALLBACKS,
        "readout.outputs(model, x, batch_size=-1)",
        ValueError,
        "`batch_size` must be an integer >= 1. Received: batch_size=-1",
    ),
    Row(
        CALLBACKS,
        "InformationMetrics((x, y), max_samples=2.5)",
        TypeError,
        "`max_samples` must be an integer >= 1. Received: max_samples=2.5",
    ),
    # -- metric functions
    Row(
        METRICS,
        "metrics.nc1([['a', 'b'], ['c', 'd']], [0, 1])",
        TypeError,
        "`z` must be a numeric array. Received: z with dtype <U1",
    ),
    Row(
        METRICS,
        "metrics.nc1(z, y, variant='pinv')",
        ValueError,
        "`variant` must be one of 'papyan', 'dim', 'trace_ratio'. Received: variant='pinv'",
    ),
    Row(
        METRICS,
        "metrics.cdnv(z, [0.5, 1.0, 0.0, 1.0])",
        ValueError,
        "`labels` must hold integer class ids. Received: labels with dtype float64 "
        "(first values [0.5, 1.0, 0.0])",
    ),
    Row(
        METRICS,
        "metrics.equinorm(z, [0, 0, 0, 0])",
        ValueError,
        "`labels` must contain at least 2 classes. Received: labels with 1 class(es) [0]",
    ),
    Row(
        METRICS,
        "metrics.equiangularity(z[:, 0], y)",
        ValueError,
        "`z` must be a 2-D array of shape (N, d). Received: z with shape (4,)",
    ),
    Row(
        METRICS,
        "metrics.hypercube_alignment(z, y[:3])",
        ValueError,
        "`labels` must be a 1-D array with one label per row of `z` (4). "
        "Received: labels with shape (3,)",
    ),
    Row(
        METRICS,
        "metrics.separation_ratio(z, y, reduction='max')",
        ValueError,
        "`reduction` must be one of 'mean', 'median', 'none'. Received: reduction='max'",
    ),
    Row(
        METRICS,
        "metrics.binarity(z[:1])",
        ValueError,
        "`z` must have at least 2 rows. Received: z with shape (1, 2)",
    ),
    Row(
        METRICS,
        "metrics.binarity(z, reg_covar=0.0)",
        ValueError,
        "`reg_covar` must be a positive number. Received: reg_covar=0.0",
    ),
    Row(
        METRICS,
        "metrics.collapse_metrics(z, y, include=['self_duality'])",
        ValueError,
        "`classifier_kernel` must be given to compute 'self_duality'. "
        "Received: classifier_kernel=None",
    ),
    Row(
        METRICS,
        "metrics.self_duality(z, y, np.zeros((3, 2)))",
        ValueError,
        "`classifier_kernel` must have shape (d, K) = (2, K) with K above every class id. "
        "Received: classifier_kernel with shape (3, 2)",
    ),
    Row(
        METRICS,
        "metrics.mahalanobis_score(z, y, np.zeros((2, 3)))",
        ValueError,
        "`z` must have the 2 features of `z_fit`. Received: z with shape (2, 3)",
    ),
    Row(
        METRICS,
        "metrics.mahalanobis_score(z, y, z, predictions=[0, 1, 2, 1])",
        ValueError,
        "`predictions` must be classes fitted from `labels_fit` ([0, 1]). "
        "Received: predictions with [2]",
    ),
    Row(
        METRICS,
        "metrics.max_softmax_score([[0.0, np.inf]])",
        ValueError,
        "`logits` must be finite. Received: logits with 1 NaN or inf values",
    ),
    Row(
        METRICS,
        "metrics.misclassification_auroc([0.9, 0.2], [2, 3])",
        ValueError,
        "`correct` must hold booleans or 0/1. Received: correct with values [2, 3]",
    ),
    Row(
        METRICS,
        "metrics.kl_entropy(z, k=4)",
        ValueError,
        "`k` must be smaller than the number of samples (4). Received: k=4",
    ),
    Row(
        METRICS,
        "metrics.mutual_information(z, y[:2])",
        ValueError,
        "`y` must be a 1-D array with one label per row of `z` (4) (or one-hot rows (4, C)). "
        "Received: y with shape (2,)",
    ),
    Row(
        METRICS,
        "metrics.interaction_information(z, y, k=1, features=[2])",
        ValueError,
        "`features` must be distinct integer indices in [0, 2). Received: features=[2]",
    ),
    Row(
        METRICS,
        "metrics.max_angle_deviation(z, [0, 0, 0, 0])",
        ValueError,
        "`labels` must contain at least 2 classes. Received: labels with 1 class(es) [0]",
    ),
    Row(
        METRICS,
        "metrics.mean_norm([[np.nan, 1.0]])",
        ValueError,
        "`z` must be finite. Received: z with 1 NaN or inf values",
    ),
    Row(
        METRICS,
        "metrics.norm_cv(z[0])",
        ValueError,
        "`z` must be a 2-D array of shape (N, d). Received: z with shape (2,)",
    ),
    Row(
        METRICS,
        "metrics.ncc_agreement(z, y, [0, 1])",
        ValueError,
        "`predictions` must be a 1-D array with one label per row of `z` (4). "
        "Received: predictions with shape (2,)",
    ),
    Row(
        METRICS,
        "metrics.nc1(z, y, rtol=-1.0)",
        ValueError,
        "`rtol` must be a number >= 0. Received: rtol=-1.0",
    ),
    Row(
        METRICS,
        "metrics.separation_ratio_per_sample(z, y[:2])",
        ValueError,
        "`labels` must be a 1-D array with one label per row of `z` (4). "
        "Received: labels with shape (2,)",
    ),
    Row(
        METRICS,
        "metrics.information_metrics(z, y, k=0)",
        ValueError,
        "`k` must be an integer >= 1. Received: k=0",
    ),
    Row(
        METRICS,
        "metrics.interaction_information_per_feature(z[:, :1], y)",
        ValueError,
        "`z` must have at least 2 features for interaction information. Received: z with 1 feature",
    ),
    # -- plotting
    Row(
        PLOTTING,
        "plotting.plot_information({'loss': [1.0]})",
        ValueError,
        "`history` must hold at least one of the keys ('val_entropy', 'val_mutual_information', "
        "'val_interaction_information'). Received: history with keys ['loss']",
    ),
    Row(
        PLOTTING,
        "plotting.plot_information({'val_entropy': [1.0]}, every=0)",
        ValueError,
        "`every` must be an integer >= 1. Received: every=0",
    ),
    Row(
        PLOTTING,
        "plotting.plot_latent_histograms(z, dims=[5])",
        ValueError,
        "`dims` must be indices in [0, 2) (z has 2 dimensions). Received: dims=[5]",
    ),
    Row(
        PLOTTING,
        "plotting.plot_latents_2d(np.zeros((4, 3)), y)",
        ValueError,
        "`z` must have exactly 2 columns (a 2-d bottleneck). Received: z with shape (4, 3)",
    ),
    Row(
        PLOTTING,
        "plotting.plot_objective_vs_gamma([1.0, -1.0], [0.5, 0.6])",
        ValueError,
        "`gammas` must all be > 0 (log axis). Received: gammas=[1.0, -1.0]",
    ),
    Row(
        PLOTTING,
        "plotting.plot_separation_vs_robustness([1.0, 2.0], [0.1])",
        ValueError,
        "`y` must have the same length as x (>= 2 points). Received: x with 2, y with 1 points",
    ),
    Row(
        PLOTTING,
        "plotting.plot_bracket([1.0], [1.0, 2.0])",
        ValueError,
        "`found` must have one value per input of certified (>= 1 input). "
        "Received: certified with 1, found with 2 values",
    ),
    Row(
        PLOTTING,
        "plotting.plot_bracket([-1.0], [1.0])",
        ValueError,
        "`certified` must be >= 0 (not NaN). Received: certified with -1.0",
    ),
    Row(
        PLOTTING,
        "plotting.plot_training_curves({'lpc': {'loss': [1.0]}})",
        ValueError,
        "`histories` must hold at least one of the keys ('gamma', 'accuracy', 'val_nc1', "
        "'val_separation_ratio', 'val_deepfool'). Received: histories with keys ['loss']",
    ),
    Row(
        PLOTTING,
        "plotting.pearson_r([1.0], [2.0])",
        ValueError,
        "`y` must have the same length as x (>= 2 points). Received: x with 1, y with 1 points",
    ),
    Row(
        SCHEDULES,
        "schedules.Geometric(0.0, 1.0, 10)",
        ValueError,
        "`start` must be a positive number. Received: start=0.0",
    ),
    Row(
        OPTIMIZERS,
        "optimizers.LRMultiplierOptimizer('adam', {})",
        ValueError,
        "`multipliers` must be a non-empty mapping. Received: multipliers={}",
    ),
    Row(
        METRICS,
        "metrics.CollapseAccumulator().result()",
        ValueError,
        "`labels` must contain at least 2 classes over all batches. "
        "Received: 0 class(es) in 0 samples",
    ),
    # -- robustness
    Row(
        ROBUSTNESS,
        "robustness.deepfool('model', x)",
        TypeError,
        "`model` must be a Keras model. Received: model='model'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.deepfool(model, [['a', 'b', 'c']])",
        TypeError,
        "`x` must be a numeric array. Received: x with dtype <U1",
    ),
    Row(
        ROBUSTNESS,
        "robustness.lipschitz(model, np.full((4, 3), np.nan))",
        ValueError,
        "`x` must be finite. Received: x with 12 NaN or inf values",
    ),
    Row(
        ROBUSTNESS,
        "robustness.deepfool(model, x, clip=(1.0, 0.0))",
        ValueError,
        "`clip` must satisfy lo < hi. Received: clip=(1.0, 0.0)",
    ),
    Row(
        ROBUSTNESS,
        "robustness.lipschitz(model, x, [0.5, 1.0, 0.0, 1.0])",
        ValueError,
        "`y` must hold integer class ids. "
        "Received: y with dtype float64 (first values [0.5, 1.0, 0.0])",
    ),
    Row(
        ROBUSTNESS,
        "robustness.deepfool(model, x, y=[0, 1, 2, 1])",
        ValueError,
        "`y` must hold labels in [0, 2) for the model's 2 outputs. "
        "Received: y with values in [0, 2]",
    ),
    Row(
        ROBUSTNESS,
        "robustness.fgsm_accuracy(model, x, y, eps=[])",
        ValueError,
        "`eps` must be a number or a non-empty list. Received: eps=[]",
    ),
    Row(
        ROBUSTNESS,
        "robustness.pgd_accuracy(model, x, y, eps=0.1, step_size=0.0)",
        ValueError,
        "`step_size` must be a positive number. Received: step_size=0.0",
    ),
    Row(
        ROBUSTNESS,
        "robustness.cast_model(model, 'float16')",
        ValueError,
        "`dtype` must be one of 'float32', 'float64'. Received: dtype='float16'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.cast_model('model')",
        TypeError,
        "`model` must be a Keras model. Received: model='model'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.certified_radius(model, x, method='alpha')",
        ValueError,
        "`method` must be one of 'lipschitz', 'ibp', 'crown'. Received: method='alpha'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.certified_at(model, x, eps=-1.0)",
        ValueError,
        "`eps` must be a number >= 0. Received: eps=-1.0",
    ),
    Row(
        ROBUSTNESS,
        "robustness.robustness_bracket(model, x, eps=-0.5)",
        ValueError,
        "`eps` must be a number >= 0. Received: eps=-0.5",
    ),
    Row(
        ROBUSTNESS,
        "robustness.minimal_perturbation(model, x, norm='l1')",
        ValueError,
        "`norm` must be one of 'l2', 'linf'. Received: norm='l1'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.minimal_perturbation(model, x, attacks=['fgsm'])",
        ValueError,
        "`attacks` must name registered attacks ('deepfool', 'fmn', 'pgd', 'apgd-ce', "
        "'apgd-dlr', 'boundary') or be callables. Received: attacks=['fgsm'] with 'fgsm'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.minimal_perturbation(model, x, attacks=['fmn', 'fmn'])",
        ValueError,
        "`attacks` must not repeat a name. Received: attacks=['fmn', 'fmn']",
    ),
    Row(
        ROBUSTNESS,
        "robustness.minimal_perturbation(model, x, budget=0)",
        ValueError,
        "`budget` must be an integer >= 1. Received: budget=0",
    ),
    Row(
        ROBUSTNESS,
        "robustness.minimal_perturbation(model, x, budget={'fnm': 10})",
        ValueError,
        "`budget` must only name attacks (apgd-ce, apgd-dlr, boundary, deepfool, fmn, pgd). "
        "Received: budget={'fnm': 10}",
    ),
    Row(
        ROBUSTNESS,
        "robustness.minimal_perturbation(model, x, clip=(1.0, 0.0))",
        ValueError,
        "`clip` must satisfy lo < hi. Received: clip=(1.0, 0.0)",
    ),
    Row(
        ROBUSTNESS,
        "robustness.minimal_perturbation(model, x, y=[0, 1, 2, 1])",
        ValueError,
        "`y` must hold labels in [0, 2) for the model's 2 outputs. "
        "Received: y with values in [0, 2]",
    ),
    Row(
        ROBUSTNESS,
        "robustness.minimal_perturbation(model, x, search='some')",
        ValueError,
        "`search` must be one of 'auto', 'all'. Received: search='some'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.minimal_perturbation(model, x, deepfool_result=x)",
        TypeError,
        "`deepfool_result` must be a DeepFoolResult (from `deepfool`) or None. "
        "Received: deepfool_result of type ndarray",
    ),
    Row(
        ROBUSTNESS,
        "robustness.apgd_accuracy(model, x, y, 0.1, loss='mse')",
        ValueError,
        "`loss` must be one of 'ce', 'dlr'. Received: loss='mse'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.accuracy_curve('cw', model, x, y, [0.1, 0.2])",
        ValueError,
        "`attack` must be one of 'fgsm', 'pgd', 'apgd'. Received: attack='cw'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.register_attack('fmn', lambda *a, **k: None)",
        ValueError,
        "`name` must not be registered already (pass replace=True to replace it). "
        "Received: name='fmn'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.register_attack('mine', 'fn')",
        TypeError,
        "`fn` must be a callable attack. Received: fn='fn'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.register_attack('mine', lambda *a, **k: None, kind='label')",
        ValueError,
        "`kind` must be one of 'gradient', 'decision', 'other'. Received: kind='label'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.unregister_attack('fgsm')",
        ValueError,
        "`name` must be a registered attack ('deepfool', 'fmn', 'pgd', 'apgd-ce', 'apgd-dlr', "
        "'boundary'). Received: name='fgsm'",
    ),
    Row(
        ROBUSTNESS,
        "robustness.Scorer(model, batch_size=0)",
        ValueError,
        "`batch_size` must be an integer >= 1. Received: batch_size=0",
    ),
    # -- optimizers
    Row(
        OPTIMIZERS,
        "optimizers.with_lr_multipliers('nope', {'head': 10.0})",
        TypeError,
        "`inner_optimizer` must be a plain keras.optimizers.Optimizer (not already wrapped). "
        "Received: inner_optimizer='nope'",
    ),
    Row(
        OPTIMIZERS,
        "optimizers.with_lr_multipliers(keras.optimizers.SGD(), {'head': float('inf')})",
        ValueError,
        "`multipliers['head']` must be a finite number. Received: multipliers['head']=inf",
    ),
    Row(
        OPTIMIZERS,
        "optimizers.lpc_multipliers(lpc_model, factor=-1.0)",
        ValueError,
        "`factor` must be a positive number. Received: factor=-1.0",
    ),
    Row(
        OPTIMIZERS,
        "optimizers.lpc_multipliers(lpc_model, head='nope')",
        ValueError,
        "`head` must name layers of the model (available: ['lpc', 'projection', 'head']). "
        "Received: head='nope'",
    ),
    Row(
        OPTIMIZERS,
        "optimizers.lpc_multipliers(lpc_model, head=3)",
        TypeError,
        "`head` must be a layer, a layer name or a list of them. Received: head=3",
    ),
    Row(
        SURGERY,
        "with_lpc('model')",
        TypeError,
        "`model` must be a keras.Model classifier. Received: model='model'",
    ),
    Row(
        SURGERY,
        "with_lpc(lpc_model)",
        ValueError,
        "`model` must not already contain a LatentPointCollapse layer. "
        "Received: model='lpc_model' (Sequential) with ['lpc']",
    ),
    Row(
        SURGERY,
        "with_lpc(keras.Sequential([keras.layers.Dense(2)], name='unbuilt'))",
        ValueError,
        "`model` must be built with a known input shape (start a Sequential with keras.Input, "
        "or call model.build(input_shape)). Received: model='unbuilt' (Sequential), not built",
    ),
    Row(
        SURGERY,
        "with_lpc(keras.Sequential([keras.Input((3,)), keras.layers.Activation('relu')], name='act'))",
        ValueError,
        "`model` must end in a Dense classification head. Received: model='act' (Sequential), "
        "which has no layer with weights on the path to its output",
    ),
    # -- datasets
    Row(
        DATASETS,
        "datasets.load_digits(seed=1.5)",
        TypeError,
        "`seed` must be an integer >= 0. Received: seed=1.5",
    ),
    Row(
        DATASETS,
        "datasets.make_hypercube_clusters(n=10, d=3, classes=0, noise=0.1)",
        ValueError,
        "`classes` must be an integer >= 1. Received: classes=0",
    ),
    Row(
        DATASETS,
        "datasets.load_tfds('mnist', split='')",
        TypeError,
        "`split` must be a non-empty string. Received: split=''",
    ),
    # -- tuning
    Row(
        TUNING,
        "tuning.gamma_hyperparameters(None)",
        TypeError,
        "`hp` must be a keras_tuner.HyperParameters. Received: hp=None",
    ),
    Row(
        TUNING,
        "tuning.gamma_hyperparameters(hp, max_gamma=1000.0)",
        TypeError,
        "`max_gamma` must be a pair (low, high). Received: max_gamma=1000.0",
    ),
    Row(
        TUNING,
        "tuning.gamma_hyperparameters(hp, ramp_fraction=(0.8, 0.2))",
        ValueError,
        "`ramp_fraction` must be a pair in (0, 1] with low <= high. "
        "Received: ramp_fraction=(0.8, 0.2)",
    ),
    Row(
        TUNING,
        "tuning.CombinedObjective(weight=-1.0)",
        ValueError,
        "`weight` must be a number >= 0. Received: weight=-1.0",
    ),
    # -- demo and command line
    Row(
        DEMO,
        "demo.output_folder('/dev/null')",
        ValueError,
        "`out` must be a folder (created if missing), but '/dev/null' is an existing file. "
        "Received: out='/dev/null'",
    ),
    Row(
        DEMO,
        "demo.run_demo(epochs=0)",
        ValueError,
        "`epochs` must be an integer >= 1. Received: epochs=0",
    ),
    Row(
        DEMO,
        "keras-lpc demo --epochs 0",
        SystemExit,
        "keras-lpc demo: error: argument --epochs: expected a positive integer, received '0'",
    ),
    Row(
        DEMO,
        "keras-lpc demo --seeds 1.5",
        SystemExit,
        "keras-lpc demo: error: argument --seeds: expected a positive integer, received '1.5'",
    ),
    Row(
        DEMO,
        "keras-lpc demo --dim -4",
        SystemExit,
        "keras-lpc demo: error: argument --dim: expected a positive integer, received '-4'",
    ),
    Row(
        DEMO,
        "keras-lpc demo --attack-samples many",
        SystemExit,
        "keras-lpc demo: error: argument --attack-samples: expected a positive integer, "
        "received 'many'",
    ),
    Row(
        DEMO,
        "keras-lpc demo --dataset imagenet",
        SystemExit,
        "keras-lpc demo: error: argument --dataset: invalid choice: 'imagenet' "
        "(choose from 'digits', 'synthetic', 'cifar10', 'cifar100', 'svhn_cropped', 'mnist')",
    ),
    Row(
        DEMO,
        "keras-lpc demo --augment-noise -0.1",
        SystemExit,
        "keras-lpc demo: error: argument --augment-noise: expected a number >= 0, received '-0.1'",
    ),
    Row(
        DEMO,
        "keras-lpc demo --dataset synthetic --architecture cnn",
        SystemExit,
        "keras-lpc demo: error: `architecture` must be 'mlp' for the synthetic clusters "
        "(they are not images). Received: architecture='cnn' with dataset='synthetic'",
    ),
    Row(
        DEMO,
        "keras-lpc demo --max-train 5",
        SystemExit,
        "keras-lpc demo: error: `max_train` must be an integer >= 10. Received: max_train=5",
    ),
    Row(
        DEMO,
        "demo.build_model(64, 10, dim=16, architecture='resnet')",
        ValueError,
        "`input_shape` must be (height, width, channels) for architecture 'resnet'. "
        "Received: input_shape=64",
    ),
    Row(
        DEMO,
        "demo.DemoConfig(architecture='vgg')",
        ValueError,
        "`architecture` must be one of 'mlp', 'cnn', 'resnet'. Received: architecture='vgg'",
    ),
    Row(
        DEMO,
        "demo.DemoConfig(certify='alpha')",
        ValueError,
        "`certify` must be one of 'crown', 'ibp', 'lipschitz'. Received: certify='alpha'",
    ),
    Row(
        DEMO,
        "demo.DemoConfig(certify_samples=0)",
        ValueError,
        "`certify_samples` must be an integer >= 1. Received: certify_samples=0",
    ),
    Row(
        DEMO,
        "keras-lpc",
        SystemExit,
        "keras-lpc: error: the following arguments are required: command",
    ),
)


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """conftest's fixture without its per-test garbage collection (~1 s a row).

    The rows build at most two tiny models each, so Keras' global state is
    reset without `gc.collect()`.
    """
    keras.utils.set_random_seed(1234)
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)
    keras.backend.clear_session(free_memory=False)


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "make_errors_doc", Path(__file__).with_name("make_errors_doc.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _namespace(call: str) -> dict:
    """Run the SETUP blocks that ``call`` needs (imports and data always)."""
    namespace: dict = {}
    for name, code in SETUP.items():
        if name in ("imports", "data") or re.search(rf"\b{name}\b", call):
            exec(code, namespace)  # noqa: S102 - the page shows this exact code
    return namespace


def _run(call: str) -> None:
    """Evaluate ``call``; a command line runs the CLI with its stderr captured."""
    if call.startswith("keras-lpc"):
        from keras_lpc import cli

        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                cli.main(shlex.split(call)[1:])
            except SystemExit as exit_:
                lines = stderr.getvalue().strip().splitlines()
                raise SystemExit(exit_.code, lines[-1] if lines else "") from None
        return
    eval(call, _namespace(call))  # noqa: S307 - the calls are the rows above


def _unquoted(text: str) -> str:
    # argparse quotes the choices in its message with repr() up to Python 3.12.7
    # and plainly afterwards; the rest of the message is the same.
    return text.replace("'", "")


@pytest.mark.parametrize("row", ROWS, ids=[row.call for row in ROWS])
def test_bad_input_raises_the_documented_error(row: Row):
    if re.search(r"\bhp\b", row.call):
        pytest.importorskip("keras_tuner")
    with pytest.raises(row.error) as info:
        _run(row.call)
    if row.error is SystemExit:
        code, message = info.value.args
        assert code == 2
        assert _unquoted(message) == _unquoted(row.message)
    else:
        assert type(info.value) is row.error
        assert str(info.value) == row.message


def test_every_message_names_the_argument_and_the_value():
    for row in ROWS:
        if row.error is SystemExit:
            # argparse's own form, or a flag combination checked by DemoConfig
            pattern = r"argument --[a-z-]+: .*'|required: command|error: `[a-z_]+` .*Received: "
            assert re.search(pattern, row.message), row
        else:
            name = re.match(r"`([^`]+)`", row.message)
            assert name and "Received: " in row.message, row


# Public callables that need no row, and why.
NO_ROW = {
    # a context manager over a layer found by `latents`, whose rows are above
    "recording": "takes a layer found and checked by latents()",
    # result containers: built by the library, not from user input
    "DeepFoolResult": "a result type",
    "LipschitzResult": "a result type",
    "HypercubeClusters": "a result type",
    "Split": "a result type",
    "RunResult": "a result type",
    "MinimalPerturbationResult": "a result type",
    "CertifiedRadiusResult": "a result type",
    "RobustnessBracket": "a result type",
    "GammaSchedule": "an abstract base class",
    # the demo's steps take a DemoConfig, whose rows are above
    "load_data": "takes a checked DemoConfig",
    # run state and results of the annealing package: built by the library
    "AnnealingRun": "built by GammaAnnealing from checked arguments",
    "AnnealingState": "a result type",
    "EpochState": "a result type",
    "PaceState": "a result type",
    "LayerAnnealing": "a result type",
    "Decision": "a result type",
    "Policy": "an abstract base class",
    # the metric callbacks' base classes: their arguments are the subclasses' rows
    "MetricCallback": "a base class (rows: CollapseMetrics...)",
    "LatentMetricCallback": "a base class (rows: CollapseMetrics...)",
    "ModelMetricCallback": "a base class (rows: RobustnessMetrics...)",
    # a predicate: any value is a valid question
    "in_graph": "answers True/False for any value",
    "train_and_measure": "takes a checked DemoConfig",
}
# Public callables that check no argument yet (a row is due when they do).
KNOWN_GAPS = {"latent_penalty"}


def _public_callables() -> dict[int, tuple[object, set[str]]]:
    """Every callable in `keras_lpc.__all__` and its subpackages' `__all__`, by identity."""
    import importlib
    import inspect

    import keras_lpc

    modules = [keras_lpc, importlib.import_module("keras_lpc.callbacks")]
    modules += [getattr(keras_lpc, n) for n in keras_lpc.__all__]
    modules.append(importlib.import_module("keras_lpc.demo"))
    found: dict[int, tuple[object, set[str]]] = {}
    for module in modules:
        if not inspect.ismodule(module):
            continue
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if callable(obj) and not inspect.ismodule(obj):
                found.setdefault(id(obj), (obj, set()))[1].add(name)
    return found


def test_rows_cover_every_part_of_the_public_api():
    calls = "\n".join(row.call for row in ROWS)
    missing = []
    for _, names in _public_callables().values():
        if names & (set(NO_ROW) | KNOWN_GAPS):
            continue
        if not any(
            re.search(rf"(?<![\w.]){re.escape(n)}\(|\.{re.escape(n)}\(", calls) for n in names
        ):
            missing.append(sorted(names)[0])
    assert not missing, f"public callables without a row in ROWS: {sorted(missing)}"
    areas = {row.area for row in ROWS}
    assert areas == {
        LAYER,
        SCHEDULES,
        ANNEALING,
        CALLBACKS,
        METRICS,
        ROBUSTNESS,
        OPTIMIZERS,
        DATASETS,
        TUNING,
        DEMO,
        PLOTTING,
        SURGERY,
    }
    assert len(ROWS) >= 30
    assert len({row.call for row in ROWS}) == len(ROWS)


def test_doc_lists_every_row():
    expected = _load_script().render(ROWS, SETUP)
    actual = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert actual == expected, (
        "docs/errors.md is out of date with tests/test_errors.py; regenerate it with "
        "`.venv/bin/python tests/make_errors_doc.py`"
    )


def test_one_label_checker_serves_metrics_attacks_and_callbacks():
    import numpy as np

    from keras_lpc._validation import as_labels

    # booleans, integral floats, a (n, 1) column and one-hot rows all become int64 ids
    assert as_labels(np.array([True, False]), 2).tolist() == [1, 0]
    assert as_labels(np.array([2.0, 0.0]), 2).dtype == np.int64
    assert as_labels(np.array([[1], [0]]), 2, one_hot=True).tolist() == [1, 0]
    assert as_labels(np.eye(3)[[2, 0]], 2, one_hot=True, classes=3).tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"^`y` must hold one-hot rows of width 3 .*\(2, 4\)$"):
        as_labels(np.eye(4)[[2, 0]], 2, "y", one_hot=True, classes=3)
    with pytest.raises(ValueError, match=r"^`y` must hold labels >= 0\. .*values in \[-1, 1\]$"):
        as_labels([1, -1], 2, "y", nonnegative=True)
    with pytest.raises(ValueError, match=r"^`y` must hold labels in \[0, 2\) for the model's 2 "):
        as_labels([0, 2], 2, "y", classes=2)
    with pytest.raises(
        ValueError, match=r"^`c`: `y` must be a 1-D array .* `x` \(3\) \(or one-hot"
    ):
        as_labels([0, 1], 3, "y", one_hot=True, of="x", context="`c`: ")
    assert as_labels([-1, 5], 2).tolist() == [-1, 5]  # metrics take any integer ids
