"""Time the dataset loaders and the figures; writes the `datasets-plotting` section.

Run: ``KERAS_BACKEND=jax .venv/bin/python benchmarks/datasets_plotting.py``.
The tf.data pipeline is timed on 10,000 random CIFAR-sized uint8 images held
in memory (no download), with and without augmentation, side by side in one
process, so the ratio is robust to a shared machine.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks._report import machine, table, update_section  # noqa: E402
from keras_lpc import datasets, plotting  # noqa: E402
from keras_lpc.backend import tf_data  # noqa: E402


def best_of(fn, repeats: int = 3) -> float:
    """Smallest wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def pipeline_rate(augment: bool, images: np.ndarray, labels: np.ndarray) -> float:
    """Images per second through one pass of the cifar10 pipeline."""
    tf, _ = tf_data.require_tfds()
    spec = datasets.TFDS_DATASETS["cifar10"]
    raw = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = tf_data.pipeline(
        raw,
        mean=spec["mean"],
        std=spec["std"],
        batch_size=128,
        augment=augment,
        flip=True,
        pad=4,
        shuffle=True,
        seed=0,
    )

    def one_pass() -> None:
        for _ in ds:
            pass

    one_pass()  # warm-up: graph tracing
    return len(images) / best_of(one_pass)


def main() -> None:
    rng = np.random.default_rng(0)
    rows = [
        ["load_digits() (1797 images, split)", 1e3 * best_of(datasets.load_digits), "ms"],
        [
            "make_hypercube_clusters(n=100000, d=16, classes=10, noise=0.3)",
            1e3 * best_of(lambda: datasets.make_hypercube_clusters(100_000, 16, 10, 0.3)),
            "ms",
        ],
    ]
    images = rng.integers(0, 256, (10_000, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 10_000)
    plain = pipeline_rate(False, images, labels)
    augmented = pipeline_rate(True, images, labels)
    rows += [
        ["tf.data cifar10 pipeline, normalise only", plain, "images/s"],
        ["tf.data cifar10 pipeline, crop + flip + normalise", augmented, "images/s"],
        ["augmentation cost (plain / augmented rate)", plain / augmented, "ratio"],
    ]
    z = np.sign(rng.standard_normal((2000, 16))) + 0.2 * rng.standard_normal((2000, 16))
    y = rng.integers(0, 10, 2000)
    e = np.arange(1, 301)
    history = {
        "gamma": (1e-4 * 1.05**e).tolist(),
        "accuracy": (1 - 0.5 / e).tolist(),
        "val_nc1": (1 / e).tolist(),
        "val_separation_ratio": np.log(e).tolist(),
        "val_deepfool": (0.01 * np.log(e[9::10])).tolist(),
    }
    with tempfile.TemporaryDirectory() as out:
        figures = {
            "plot_training_curves (2 models x 5 keys, 300 epochs)": lambda: (
                plotting.plot_training_curves(
                    {"baseline": history, "lpc": history}, path=f"{out}/c.png"
                )
            ),
            "plot_latent_histograms (2000 x 16, 10 classes)": lambda: (
                plotting.plot_latent_histograms(z, y, path=f"{out}/h.png")
            ),
            "plot_latents_2d (2000 points)": lambda: plotting.plot_latents_2d(
                z[:, :2], y, path=f"{out}/z.png"
            ),
        }
        for name, draw in figures.items():
            rows.append([name, 1e3 * best_of(draw, repeats=2), "ms (draw + PNG)"])
    body = "\n\n".join(
        [
            "## Datasets and plotting (`benchmarks/datasets_plotting.py`)",
            f"Machine: {machine()}. The machine was shared with other jobs while "
            "this ran: absolute times are indicative; the augmentation ratio was "
            "measured side by side in one process. Best of 3 (figures: of 2).",
            table(["what", "value", "unit"], rows),
        ]
    )
    update_section("datasets-plotting", body)
    print(body)


if __name__ == "__main__":
    main()
