"""Pinned robustness results, recorded per backend before the robustness core redesign (issue 26).

Two small models whose weights come from a NumPy seed (the same model on every backend, not
the backend's RNG): a Dense MLP and a tiny Conv2D net, 20 inputs each in [0, 1]. For each
model and backend the file robustness_results.json holds the per-attack verified distances
of `minimal_perturbation` (the default L2 ensemble, and the default L-inf ensemble inside
the box [0, 1]), `deepfool`, `lipschitz`, and the accuracies of `fgsm_accuracy`,
`pgd_accuracy` and `apgd_accuracy` over a few budgets. `tests/test_robustness_recorded.py`
replays `compute` and requires the same values (to float32 rounding).

Run once per backend (each run merges its backend's entry into the file)::

    KERAS_BACKEND=jax python tests/data/record_robustness_results.py
"""

from __future__ import annotations

import json
import pathlib
import sys
import warnings

import keras
import numpy as np

FILE = pathlib.Path(__file__).with_name("robustness_results.json")
N = 20
L2_BUDGET = {"deepfool": 20, "fmn": 40, "pgd": 8, "boundary": 10}
LINF_BUDGET = {"fmn": 40, "apgd-ce": 8, "apgd-dlr": 8, "boundary": 10}
EPS = {"fgsm": [0.02, 0.05, 0.1, 0.3], "pgd": [0.02, 0.05, 0.1], "pgd_l2": [0.1, 0.3, 0.6]}


def _seeded(model: keras.Model, seed: int) -> keras.Model:
    """``model`` with weights drawn by NumPy: kernels N(0, 1 / fan_in), biases N(0, 0.1^2)."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        if w.ndim == 1:
            weights.append(0.1 * rng.normal(size=w.shape))
        else:
            weights.append(rng.normal(size=w.shape) / np.sqrt(np.prod(w.shape[:-1])))
    model.set_weights([w.astype("float32") for w in weights])
    return model


def models() -> dict[str, tuple[keras.Model, np.ndarray, np.ndarray]]:
    """``name -> (model, x, y)``: y the predictions with the first two changed (misclassified)."""
    mlp = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(24, activation="tanh"),
            keras.layers.Dense(24, activation="relu"),
            keras.layers.Dense(5),
        ]
    )
    cnn = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
        ]
    )
    out = {}
    for seed, (name, model) in enumerate((("mlp", mlp), ("cnn", cnn))):
        model = _seeded(model, seed)
        rng = np.random.default_rng(100 + seed)
        x = rng.uniform(0.0, 1.0, size=(N, *model.inputs[0].shape[1:])).astype("float32")
        pred = np.argmax(keras.ops.convert_to_numpy(model(x)), axis=1)
        y = pred.copy()
        y[:2] = (pred[:2] + 1) % model.outputs[0].shape[-1]
        out[name] = (model, x, y)
    return out


def _floats(a) -> list:
    return np.asarray(a, dtype="float64").tolist()


def compute(curve) -> dict[str, dict]:
    """The pinned values of every model; ``curve(fn, model, x, y, eps, **kwargs)`` is the
    accuracy (one per eps) of ``fn`` (`fgsm_accuracy`, `pgd_accuracy`, `apgd_accuracy`)."""
    from keras_lpc.robustness import (
        apgd_accuracy,
        deepfool,
        fgsm_accuracy,
        lipschitz,
        minimal_perturbation,
        pgd_accuracy,
    )

    out = {}
    for name, (model, x, y) in models().items():
        l2 = minimal_perturbation(model, x, y, budget=L2_BUDGET, verbose=0)
        linf = minimal_perturbation(
            model, x, y, norm="linf", budget=LINF_BUDGET, clip=(0.0, 1.0), verbose=0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unflipped inputs
            df = deepfool(model, x, y)
        out[name] = {
            "l2": {k: _floats(v) for k, v in l2.by_attack.items()},
            "l2_best": l2.best_attack.tolist(),
            "linf": {k: _floats(v) for k, v in linf.by_attack.items()},
            "linf_best": linf.best_attack.tolist(),
            "deepfool": _floats(df.per_sample),
            "deepfool_iterations": df.iterations.tolist(),
            "lipschitz": _floats(lipschitz(model, x, y).per_sample),
            "fgsm": _floats(curve(fgsm_accuracy, model, x, y, EPS["fgsm"], clip=(0.0, 1.0))),
            "pgd": _floats(curve(pgd_accuracy, model, x, y, EPS["pgd"], steps=10)),
            "pgd_l2_clip": _floats(
                curve(pgd_accuracy, model, x, y, EPS["pgd_l2"], norm="l2", clip=(0.0, 1.0))
            ),
            "apgd": _floats(curve(apgd_accuracy, model, x, y, EPS["pgd"], steps=10)),
            "apgd_dlr_l2": _floats(
                curve(
                    apgd_accuracy,
                    model,
                    x,
                    y,
                    EPS["pgd_l2"],
                    loss="dlr",
                    norm="l2",
                    steps=10,
                    random_start=True,
                )
            ),
        }
    return out


def _list_curve(fn, model, x, y, eps, **kwargs):
    # the API at recording time: a list of eps gives an array
    return fn(model, x, y, eps, **kwargs)


if __name__ == "__main__":
    sys.path.insert(0, str(FILE.parents[2]))
    results = json.loads(FILE.read_text()) if FILE.exists() else {}
    results[keras.backend.backend()] = compute(_list_curve)
    FILE.write_text(json.dumps(results, indent=0, sort_keys=True) + "\n")
    print(f"{keras.backend.backend()}: written to {FILE}")
