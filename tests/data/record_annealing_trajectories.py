"""Recorded GammaAnnealing trajectories of the code before the annealing redesign (commit deaa82b).

Scripted training accuracies drive the callback's hooks by hand; the per-step gamma and the
per-epoch logs are written to annealing_trajectories.json, which tests/test_gamma_annealing.py
replays through the redesigned callback. Kept for the record: it runs against deaa82b only.
"""

import json
import sys

import keras

import keras_lpc
from keras_lpc import schedules as S
from keras_lpc.callbacks import TrainingPace

ACC = [
    0.30,
    0.60,
    0.80,
    0.85,
    0.86,
    0.86,
    0.86,
    0.86,
    0.70,
    0.80,
    0.86,
    0.86,
    0.86,
    0.87,
    0.87,
    0.87,
]
STEPS = 5


def model():
    m = keras.Sequential(
        [keras.Input((4,)), keras_lpc.LatentPointCollapse(2, name="lpc"), keras.layers.Dense(3)]
    )
    m.compile(
        keras.optimizers.SGD(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return m


def drive(cb, accs, steps):
    m = model()
    cb.set_model(m)
    cb.set_params({"epochs": len(accs), "steps": steps, "verbose": 0})
    cb.on_train_begin()
    gammas, logs_out = [], []
    for epoch, acc in enumerate(accs):
        cb.on_epoch_begin(epoch)
        for batch in range(steps):
            cb.on_train_batch_begin(batch)
            gammas.append(cb.value_at(cb.count_at(batch)))
            cb.on_train_batch_end(batch, {"accuracy": acc} if batch + 1 < steps else {})
        logs = {"accuracy": acc}
        cb.on_epoch_end(epoch, logs)
        logs_out.append({k: float(v) for k, v in logs.items()})
    return gammas, logs_out


scen = {
    "default": dict(kwargs={}, unit="step"),
    "default_max50": dict(kwargs={"max_gamma": 50.0}, unit="step"),
    "default_epoch": dict(kwargs={"unit": "epoch"}, unit="epoch"),
    "explicit_paced_stretched": dict(
        kwargs={
            "schedule": S.Linear(0.0, 100.0, 40),
            "pace": True,
            "ramp_fraction": 0.5,
            "pacing": TrainingPace(),
        },
        unit="step",
    ),
    "explicit_hold": dict(
        kwargs={
            "schedule": S.Linear(0.0, 100.0, 1000),
            "pace": False,
            "hold_fraction": 0.9,
            "pacing": None,
        },
        unit="step",
    ),
}


def main() -> None:
    out = {
        "accuracies": ACC,
        "steps": STEPS,
        "optimizer": "SGD(0.05)",
        "classes": 3,
        "scenarios": {},
    }
    for name, s in scen.items():
        g, logs = drive(keras_lpc.GammaAnnealing(**s["kwargs"]), ACC, STEPS)
        out["scenarios"][name] = {"gamma": g, "logs": logs}
        print(name, [round(v, 3) for v in g[::STEPS]])
    json.dump(out, open(sys.argv[1], "w"), indent=1)


if __name__ == "__main__":
    main()
