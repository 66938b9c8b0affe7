"""Write the cross-backend model-file fixtures of tests/test_model_files.py.

Run once per backend, from the repository root::

    for b in tensorflow jax torch; do
        KERAS_BACKEND=$b python tests/data/make_cross_backend_fixtures.py
    done

Each run trains a tiny LPC classifier for 3 epochs (2 steps each) with
`GammaAnnealing` (gamma 9.375, 18.75, 37.5, computed inside the train step:
``Exponential(9.375, 2, every=2 steps)``) and a `with_lr_multipliers` Adam,
then writes

* ``tests/data/lpc_v3_<backend>.keras``: the model, optimizer state included;
* ``tests/data/lpc_v3_<backend>.npz``: test inputs ``x``, the model's outputs
  ``y_pred`` on them, ``gamma``, the ``penalty`` ``gamma * mean(z ** 2)`` on
  ``x``, the optimizer's ``iterations``, the layer's annealed count
  (``annealing_count``, `layer.annealing.count`), the LPC layer's resume state
  entries (``annealing_state.<field>``, as the weights file stores them), and
  the weights ``next_<i>`` after one more training step on ``(x_step,
  y_step)`` (which shows whether the Adam moments were restored).

Earlier versions of this script (git history) wrote the older files, which
stay to show that such files still load: ``lpc_<backend>`` before the layer
had annealing variables (``unit="epoch"``, the state as a 9-float array),
``lpc_v2_<backend>`` with four annealing variables (count, rate, scale, on;
the count advanced by the layer at every call). v3 has six (count, origin,
step, rate, scale, on: the count is a function of the optimizer's step).
Regenerate the newest files when the layer's saved format changes on purpose
(and keep the older ones).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lpc  # noqa: E402

HERE = Path(__file__).resolve().parent
GAMMA = 37.5
FACTOR = 10.0


def build_model() -> keras.Model:
    """6 inputs -> Dense(8, silu) -> LatentPointCollapse(3) -> Dense(3) logits."""
    init = keras.initializers.GlorotUniform
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="silu", kernel_initializer=init(1), name="body"),
            keras_lpc.LatentPointCollapse(3, kernel_initializer=init(2), name="lpc"),
            keras.layers.Dense(3, kernel_initializer=init(3), name="head"),
        ]
    )


def data() -> dict[str, np.ndarray]:
    """Training data (16 samples), test inputs (5) and the extra step's batch (8)."""
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(16, 6)).astype("float32")
    y_train = rng.integers(0, 3, size=16)
    x = rng.normal(size=(5, 6)).astype("float32")
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x": x,
        "x_step": x_train[:8],
        "y_step": y_train[:8],
    }


def main() -> Path:
    backend = keras.backend.backend()
    arrays = data()
    model = build_model()
    optimizer = keras_lpc.optimizers.with_lr_multipliers(
        keras.optimizers.Adam(1e-2), keras_lpc.optimizers.lpc_multipliers(model, FACTOR)
    )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    annealing = keras_lpc.GammaAnnealing(
        keras_lpc.schedules.Exponential(GAMMA / 4, 2.0, 2, GAMMA), unit="step"
    )
    model.fit(
        arrays["x_train"],
        arrays["y_train"],
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[annealing],
    )
    lpc = model.get_layer("lpc")
    gamma = float(keras.ops.convert_to_numpy(lpc.gamma))
    assert gamma == GAMMA, gamma
    x = arrays["x"]
    y_pred = keras.ops.convert_to_numpy(model(x, training=False))
    penalty = float(keras.ops.convert_to_numpy(model.losses[0]))
    out = {
        "backend": np.array(backend),
        "keras_version": np.array(keras.__version__),
        "x": x,
        "y_pred": y_pred,
        "gamma": np.array(gamma),
        "penalty": np.array(penalty),
        "iterations": np.array(int(keras.ops.convert_to_numpy(model.optimizer.iterations))),
        "annealing_count": np.asarray(lpc.annealing.count),
        **lpc.annealing.resume.to_entries(),
        "x_step": arrays["x_step"],
        "y_step": arrays["y_step"],
    }
    keras_path = HERE / f"lpc_v3_{backend}.keras"
    model.save(keras_path)
    model.fit(arrays["x_step"], arrays["y_step"], batch_size=8, epochs=1, shuffle=False, verbose=0)
    for i, weight in enumerate(model.get_weights()):
        out[f"next_{i}"] = weight
    np.savez(HERE / f"lpc_v3_{backend}.npz", **out)
    return keras_path


if __name__ == "__main__":
    path = main()
    print(f"wrote {path} ({path.stat().st_size} bytes) and {path.with_suffix('.npz').name}")
