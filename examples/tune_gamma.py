"""Tune gamma with KerasTuner on the embedded digits data (CPU, a few minutes).

    python examples/tune_gamma.py [--trials 12] [--epochs 30] [--tuner random|hyperband]
                                  [--out tune-gamma]

Each trial builds the design-card MLP (64-256-LatentPointCollapse(16)-10,
SiLU, AdamW with the output layer at 10x the learning rate) whose
hyperparameters come from `keras_lpc.tuning.gamma_hyperparameters`: the
tuned ``lpc_max_gamma`` is the maximum of a quadratic ramp from 0, per step,
on the clock, ending at 95 % of each trial (by its last step at the latest),
so every trial, Hyperband's short ones too, trains at its tuned value. The objective is `keras_lpc.tuning.CombinedObjective`:

    val_accuracy_robustness = val_accuracy + weight * val_deepfool

measured by `RobustnessMetrics` at the last epoch of each trial on a
validation split carved out of the training data (the test split is kept
for the best model only). The script prints the trials ranked by the
objective, evaluates the best model on the test split, and writes
``objective_vs_gamma.png`` (objective, validation accuracy and DeepFool
score against the tuned maximum gamma) and ``results.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lpc  # noqa: E402
from keras_lpc import optimizers, plotting, tuning  # noqa: E402

keras_tuner = tuning.require_keras_tuner()

OBJECTIVE = tuning.CombinedObjective.name
PANELS = (
    (OBJECTIVE, "val_accuracy + w * val_deepfool"),
    ("val_accuracy", "validation accuracy"),
    ("val_deepfool", "DeepFool score ||r|| / ||x||"),
)


class DigitsLPC(keras_tuner.HyperModel):
    """The design-card MLP with LPC hyperparameters and a robustness objective.

    Args:
        space: keyword arguments of `keras_lpc.tuning.gamma_hyperparameters`.
        head_multiplier: learning-rate multiplier of the output layer.
        weight: weight of the DeepFool score in the objective.
        robustness_samples: validation inputs attacked by DeepFool per trial.
    """

    def __init__(
        self,
        space: dict[str, Any],
        head_multiplier: float = 10.0,
        weight: float = 2.0,
        robustness_samples: int = 200,
    ) -> None:
        super().__init__()
        self.space = space
        self.head_multiplier = head_multiplier
        self.weight = weight
        self.robustness_samples = robustness_samples

    def build(self, hp: Any) -> keras.Model:
        choice = tuning.gamma_hyperparameters(hp, **self.space)
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(256, activation="silu"),
                choice.layer(name="lpc"),
                keras.layers.Dense(10, name="head"),
            ]
        )
        optimizer = optimizers.with_lr_multipliers(
            keras.optimizers.AdamW(), optimizers.lpc_multipliers(model, self.head_multiplier)
        )
        model.compile(
            optimizer,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return model

    def fit(
        self,
        hp: Any,
        model: keras.Model,
        x: np.ndarray,
        y: np.ndarray,
        *,
        validation_data: tuple[np.ndarray, np.ndarray],
        epochs: int,
        callbacks: list[keras.callbacks.Callback] | tuple = (),
        **kwargs: Any,
    ) -> dict[str, float]:
        """Train one trial; return the last epoch's logs (the objective among them)."""
        choice = tuning.gamma_hyperparameters(hp, **self.space)
        ours = [
            choice.callback(),
            # DeepFool once, at the trial's last epoch: the model the trial hands back.
            keras_lpc.RobustnessMetrics(
                validation_data,
                every=epochs,
                max_samples=self.robustness_samples,
                lipschitz=False,
            ),
            tuning.CombinedObjective(weight=self.weight),
        ]
        # ours first, so KerasTuner's own callbacks (checkpointing) see the objective
        history = model.fit(
            x,
            y,
            validation_data=validation_data,
            epochs=epochs,
            callbacks=[*ours, *callbacks],
            **kwargs,
        )
        return {key: float(values[-1]) for key, values in history.history.items()}


def _split(data: keras_lpc.datasets.Split, fraction: float, seed: int) -> tuple:
    """Hold out ``fraction`` of each class of the training split for validation."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(data.y_train), dtype=bool)
    for c in np.unique(data.y_train):
        members = np.flatnonzero(data.y_train == c)
        val[rng.choice(members, round(fraction * len(members)), replace=False)] = True
    return (data.x_train[~val], data.y_train[~val]), (data.x_train[val], data.y_train[val])


def _trial_rows(tuner: Any) -> list[dict[str, Any]]:
    """One row per completed trial, best objective first."""
    rows = []
    for trial in tuner.oracle.get_best_trials(num_trials=len(tuner.oracle.trials)):
        hp = trial.hyperparameters.values
        row = {
            "trial_id": trial.trial_id,
            "hyperparameters": {k: v for k, v in hp.items() if k.startswith("lpc_")},
            "epochs": int(hp.get("tuner/epochs", 0)) or None,  # Hyperband's budget
            "score": float(trial.score),
        }
        for name in ("gamma", "accuracy", "val_accuracy", "val_deepfool", OBJECTIVE):
            if trial.metrics.exists(name):
                row[name] = float(trial.metrics.get_last_value(name))
        rows.append(row)
    return rows


def _figure(rows: list[dict[str, Any]], path: Path, weight: float) -> None:
    """Three panels against the tuned maximum gamma: objective, accuracy, DeepFool."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13.0, 4.0), layout="constrained")
    gammas = [row["hyperparameters"]["lpc_max_gamma"] for row in rows]
    for i, (key, label) in enumerate(PANELS):
        ax = fig.add_subplot(1, len(PANELS), i + 1)
        values = np.array([row.get(key, np.nan) for row in rows], dtype=float)
        plotting.plot_objective_vs_gamma(
            gammas, values, ax=ax, objective_name=label.replace("w *", f"{weight:g} *")
        )
        best = int(np.nanargmax(values))
        # a short title: the long default ones collide across three panels
        ax.set_title(f"best {values[best]:.4g} at gamma = {gammas[best]:.3g}", fontsize=10)
        ax.set_xlabel("tuned maximum gamma (lpc_max_gamma)")
    fig.suptitle(f"LPC on digits: {len(rows)} trials, last-epoch values on the validation split")
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(
    trials: int = 12,
    epochs: int = 30,
    out: str | Path = "tune-gamma",
    tuner: str = "random",
    max_gamma: tuple[float, float] = (0.1, 1e4),
    dims: tuple[int, ...] = (16,),
    weight: float = 2.0,
    robustness_samples: int = 200,
    batch_size: int = 32,
    seed: int = 0,
    verbose: int = 1,
) -> dict[str, Any]:
    """Run the search and return its results.

    Args:
        trials: trials of RandomSearch (ignored by Hyperband, whose brackets
            set the count).
        epochs: epochs per RandomSearch trial; Hyperband's ``max_epochs``.
        out: folder for the tuner's files, the figure and ``results.json``.
        tuner: ``"random"`` or ``"hyperband"``.
        max_gamma: ``(low, high)`` range of ``lpc_max_gamma`` (log-uniform).
        dims: candidate latent dimensions (``lpc_dim``).
        weight: ``w`` in ``val_accuracy + w * val_deepfool``.
        robustness_samples: validation inputs attacked by DeepFool per trial.
        batch_size: training batch size (36 steps per epoch at 32).
        seed: seed of the weights, the validation split and the tuner.
        verbose: 1 prints the ranking and the test result.

    Returns:
        ``{"trials": rows best first, "best": the best row, "test": the best
        model's test accuracy and DeepFool score, "space", "figure": PNG path,
        "seconds"}``; each row holds ``hyperparameters``, ``epochs`` (the
        trial's epoch count), ``score`` and the last epoch's ``gamma``,
        ``val_accuracy``, ``val_deepfool`` and objective.

    Example (shortened; the full run is the default):

        result = main(trials=2, epochs=2, out="/tmp/tune")
        result["best"]["hyperparameters"]["lpc_max_gamma"]
    """
    if tuner not in ("random", "hyperband"):
        raise ValueError(f"`tuner` must be 'random' or 'hyperband'. Received: tuner={tuner!r}")
    start = time.perf_counter()
    out = Path(out)
    keras.utils.set_random_seed(seed)
    data = keras_lpc.datasets.load_digits()
    (x, y), validation = _split(data, 0.2, seed)
    space = {"max_gamma": tuple(max_gamma), "dims": tuple(dims)}
    hypermodel = DigitsLPC(space, weight=weight, robustness_samples=robustness_samples)
    objective = tuning.CombinedObjective(weight=weight).objective()
    common = {"objective": objective, "directory": out, "project_name": "kt", "seed": seed}
    if tuner == "random":
        search = keras_tuner.RandomSearch(hypermodel, max_trials=trials, overwrite=True, **common)
        fit_kwargs = {"epochs": epochs}
    else:
        search = keras_tuner.Hyperband(
            hypermodel, max_epochs=epochs, factor=3, overwrite=True, **common
        )
        fit_kwargs = {}
    with warnings.catch_warnings():
        # Hyperband's continued trials and get_best_models load weights into a
        # fresh model whose optimizer has no slots yet; only the weights matter.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        search.search(
            x, y, validation_data=validation, batch_size=batch_size, verbose=0, **fit_kwargs
        )
        best_model = search.get_best_models(1)[0]
    rows = _trial_rows(search)
    for row in rows:
        row["epochs"] = row["epochs"] or epochs
    _, test_accuracy = best_model.evaluate(data.x_test, data.y_test, verbose=0)
    attack = keras_lpc.RobustnessMetrics(
        (data.x_test, data.y_test), max_samples=robustness_samples, lipschitz=False
    )
    attack.set_model(best_model)
    test = {"accuracy": float(test_accuracy), "deepfool": attack.evaluate()["deepfool"]}

    figure = out / "objective_vs_gamma.png"
    _figure(rows, figure, weight)
    result = {
        "trials": rows,
        "best": rows[0],
        "test": test,
        "space": {"max_gamma": list(max_gamma), "dims": list(dims), "tuner": tuner},
        "figure": str(figure),
        "seconds": time.perf_counter() - start,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2))
    if verbose:
        print(
            f"{'rank':>4} {'epochs':>6} {'max gamma':>10} {'dim':>4} {'final gamma':>11} "
            f"{'val acc':>8} {'deepfool':>9} {'objective':>10}"
        )
        for rank, row in enumerate(rows, 1):
            hp = row["hyperparameters"]
            print(
                f"{rank:>4} {row['epochs']:>6} {hp['lpc_max_gamma']:>10.3g} {hp['lpc_dim']:>4} "
                f"{row.get('gamma', np.nan):>11.3g} {row.get('val_accuracy', np.nan):>8.4f} "
                f"{row.get('val_deepfool', np.nan):>9.4f} {row['score']:>10.4f}"
            )
        print(
            f"best model on the test split: accuracy {test['accuracy']:.4f}, "
            f"DeepFool {test['deepfool']:.4f}; {len(rows)} trials in "
            f"{result['seconds']:.0f} s; figure: {figure}"
        )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--tuner", choices=("random", "hyperband"), default="random")
    parser.add_argument("--out", default="tune-gamma")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.trials, args.epochs, args.out, args.tuner, seed=args.seed)
