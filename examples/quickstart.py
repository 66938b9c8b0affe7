"""The design card: an MLP with a LatentPointCollapse bottleneck on the embedded digits data.

    python examples/quickstart.py [--epochs 100]

Trains with `GammaAnnealing()` defaults and `CollapseMetrics`, then prints
gamma, accuracy and NC1 at the end of the run.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

import keras_lpc  # noqa: E402


def main(epochs: int = 100, verbose: int = 0) -> dict[str, float]:
    data = keras_lpc.datasets.load_digits()
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="silu")])
    model.add(keras_lpc.LatentPointCollapse(dim=16))
    model.add(keras.layers.Dense(10))
    model.compile(
        "adamw",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        data.x_train,
        data.y_train,
        epochs=epochs,
        verbose=verbose,
        callbacks=[
            keras_lpc.GammaAnnealing(),
            keras_lpc.CollapseMetrics((data.x_test, data.y_test), every=max(1, epochs // 10)),
        ],
    )
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    result = {
        "gamma": history.history["gamma"][-1],
        "test_accuracy": float(accuracy),
        "val_nc1": history.history["val_nc1"][-1],
    }
    print(", ".join(f"{k}={v:.4g}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=100)
    main(parser.parse_args().epochs, verbose=2)
