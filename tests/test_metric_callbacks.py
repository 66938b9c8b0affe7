"""The metric callbacks among Keras' own: log order, every-k logging, mixed precision,
early data checks, datasets as data, and the public `keras_lpc.latents`."""

from __future__ import annotations

import copy
import csv
import dataclasses
import warnings

import keras
import numpy as np
import pytest

import keras_lpc
from keras_lpc.callbacks import LatentMetricCallback, ModelMetricCallback
from keras_lpc.metrics import collapse_metrics, information_metrics


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def _model(name="lpc", units=6):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(units, activation="tanh"),
            keras_lpc.LatentPointCollapse(2, name=name),
            keras.layers.Dense(2, dtype="float32"),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class _Seen(keras.callbacks.Callback):
    """Records the keys every epoch's logs hold when this callback runs."""

    def __init__(self):
        super().__init__()
        self.keys = []

    def on_epoch_end(self, epoch, logs=None):
        self.keys.append(set(logs))


# -- item 2: the keys reach every other callback, whatever the order ---------------------


class _Writer(keras.callbacks.Callback):
    """A user's callback writing a key of its own: it keeps its place, first."""

    def on_epoch_end(self, epoch, logs=None):
        logs["user_key"] = float(epoch)


def test_gamma_reaches_a_csv_logger_listed_before_gamma_annealing_alone(tmp_path):
    x, y = _data(32)
    model = _model()
    csv_path = tmp_path / "log.csv"
    schedule = keras_lpc.schedules.Linear(0.0, 3.0, 3)  # per epoch: 0, 1, 2
    annealing = keras_lpc.GammaAnnealing(schedule, unit="epoch")
    model.fit(
        x, y, epochs=3, batch_size=16, verbose=0,
        callbacks=[keras.callbacks.CSVLogger(str(csv_path)), annealing],
    )  # fmt: skip
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["gamma"]) for r in rows] == pytest.approx([0.0, 1.0, 2.0])


def test_keys_reach_callbacks_listed_before_them(tmp_path):
    x, y = _data()
    model = _model()
    seen = _Seen()
    csv_path = tmp_path / "log.csv"
    ckpt = tmp_path / "best.keras"
    keras_callbacks = [
        _Writer(),
        keras.callbacks.CSVLogger(str(csv_path)),
        keras.callbacks.EarlyStopping(monitor="val_nc1", mode="min", patience=5),
        keras.callbacks.ModelCheckpoint(
            str(ckpt), monitor="val_separation_ratio", mode="max", save_best_only=True
        ),
    ]
    collapse = keras_lpc.CollapseMetrics((x, y), labels="true", every=3)
    robust = keras_lpc.RobustnessMetrics((x, y), lipschitz=False)
    annealing = keras_lpc.GammaAnnealing(keras_lpc.schedules.Constant(0.5), unit="epoch")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = model.fit(
            x,
            y,
            epochs=4,
            batch_size=16,
            verbose=0,
            callbacks=keras_callbacks + [annealing, collapse, robust, seen],
        )
    messages = [str(w.message) for w in record]
    assert not [m for m in messages if "val_nc1" in m or "val_separation_ratio" in m], messages
    ours = {"val_nc1", "val_separation_ratio", "val_deepfool", "gamma"}
    assert ours <= seen.keys[0]  # from the first epoch on
    assert "gamma" in seen.keys[1] and "val_nc1" in seen.keys[1]  # NaN after the monitors
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and ours | {"user_key"} <= set(rows[0])
    assert [float(r["user_key"]) for r in rows] == [0.0, 1.0, 2.0, 3.0]
    assert float(rows[0]["gamma"]) == pytest.approx(0.5)
    # every=3: computed at epochs 1, 3 and the last (4); NaN at epoch 2
    assert collapse.computed_epochs == [0, 2, 3]
    nc1 = history.history["val_nc1"]
    assert len(nc1) == len(history.history["loss"]) == 4
    assert np.isnan(nc1[1]) and rows[1]["val_nc1"] == "nan"
    assert np.all(np.isfinite([nc1[0], nc1[2], nc1[3]]))
    assert float(rows[2]["val_nc1"]) == pytest.approx(nc1[2])
    # RobustnessMetrics' default every=10 > epochs: the first and the last epoch
    assert robust.computed_epochs == [0, 3]
    deepfool = history.history["val_deepfool"]
    assert len(deepfool) == 4 and np.isnan(deepfool[1:3]).all()
    assert ckpt.exists()
    # the last logged value is the function's value on the final model
    z = keras_lpc.latents(model, x)
    expected = collapse_metrics(z, y)
    assert nc1[-1] == pytest.approx(expected["nc1"], rel=1e-4)


class _Scripted(keras_lpc.callbacks.MetricCallback):
    """A user's metric callback on the public base class: a scripted score per epoch."""

    metric_names = ("score",)
    uses_labels = False

    def __init__(self, data, values, **kwargs):
        super().__init__(data, **kwargs)
        self.values = values

    def measure(self, x, y):
        return {"score": self.values[len(self.computed_epochs)]}


@pytest.mark.parametrize("monitor", ["early_stopping", "checkpoint", "reduce_lr"])
def test_monitors_on_a_key_measured_every_k_epochs_skip_the_epochs_in_between(monitor, tmp_path):
    x, y = _data(16)
    model = _model()
    # every=3 over 8 epochs: measured at epochs 0, 2, 5 and 7, improving every time
    scripted = _Scripted((x, y), [0.1, 0.2, 0.3, 0.4], every=3)
    keras_monitor = {
        "early_stopping": keras.callbacks.EarlyStopping(
            monitor="val_score", mode="max", patience=2
        ),
        "checkpoint": keras.callbacks.ModelCheckpoint(
            str(tmp_path / "best_{epoch}.weights.h5"),
            monitor="val_score",
            mode="max",
            save_best_only=True,
            save_weights_only=True,
        ),
        "reduce_lr": keras.callbacks.ReduceLROnPlateau(
            monitor="val_score", mode="max", patience=1, factor=0.5
        ),
    }[monitor]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = model.fit(
            x, y, epochs=8, batch_size=8, verbose=0, callbacks=[keras_monitor, scripted]
        )
    assert not [w for w in record if "val_score" in str(w.message)]
    assert len(history.history["loss"]) == 8  # never stopped by the epochs in between
    assert scripted.computed_epochs == [0, 2, 5, 7]
    score = history.history["val_score"]
    assert score[0] == 0.1 and score[7] == 0.4 and np.isnan(score[1])
    if monitor == "checkpoint":  # a file at every measured epoch (each one a new best), only
        saved = sorted(p.name for p in tmp_path.glob("best_*.weights.h5"))
        assert saved == [
            "best_1.weights.h5",
            "best_3.weights.h5",
            "best_6.weights.h5",
            "best_8.weights.h5",
        ]
    if monitor == "reduce_lr":  # improving at every measurement: never reduced
        assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(
            1e-3
        )
    # the filters that silenced Keras' warnings for val_score are gone after fit
    assert not [f for f in warnings.filters if "val_score" in str(f[1])]


def test_lead_outside_fit_warns_which_callback_to_move():
    x, y = _data()
    cb = keras_lpc.CollapseMetrics((x, y))
    cb.set_model(_model())
    with pytest.warns(RuntimeWarning, match="list CollapseMetrics before CSVLogger"):
        cb.on_train_begin()


def test_keras_tuner_objective_on_deepfool_with_default_every(tmp_path):
    kt = pytest.importorskip("keras_tuner")
    x, y = _data(32)

    def build(hp):
        return _model(units=hp.Int("units", 4, 6))

    tuner = kt.RandomSearch(
        build,
        objective=kt.Objective("val_deepfool", "max"),
        max_trials=1,
        directory=str(tmp_path),
        overwrite=True,
    )
    cb = keras_lpc.RobustnessMetrics((x, y), lipschitz=False)
    tuner.search(x, y, epochs=3, verbose=0, callbacks=[cb])
    trial = tuner.oracle.get_best_trials(1)[0]
    assert trial.score is not None and np.isfinite(trial.score) and trial.score > 0
    best = trial.metrics.get_history("val_deepfool")[-1]
    assert best.step in (0, 2) and best.value[0] == trial.score  # a computed epoch, not NaN


# -- item 4: mixed precision --------------------------------------------------------------


@pytest.fixture
def restore_policy():
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_every_metric_callback_under_mixed_precision(policy, restore_policy):
    keras.config.set_dtype_policy(policy)
    x, y = _data(32)
    model = _model()
    callbacks = [
        keras_lpc.CollapseMetrics((x, y), labels="true"),
        keras_lpc.RobustnessMetrics((x, y), pgd_eps=[0.1]),
        keras_lpc.InformationMetrics((x, y), every=1),
    ]
    history = model.fit(x, y, epochs=1, verbose=0, callbacks=callbacks)
    names = [cb.prefix + n for cb in callbacks for n in cb.metric_names]
    values = [history.history[n][0] for n in names]
    assert np.all(np.isfinite(values)), dict(zip(names, values))
    z = keras_lpc.latents(model, x)
    assert z.dtype == np.float32 and z.shape == (32, 2)
    assert history.history["val_nc1"][0] == pytest.approx(collapse_metrics(z, y)["nc1"], rel=1e-4)


# -- item 10: labels and the (x, y) order checked before training --------------------------


def test_non_integer_labels_fail_at_construction():
    x, y = _data(8)
    with pytest.raises(ValueError, match=r"`data`: `y` must hold integer class ids\. Received"):
        keras_lpc.CollapseMetrics((x, y + 0.5), labels="true")
    with pytest.raises(ValueError, match="`data`: `y` must hold integer class ids"):
        keras_lpc.InformationMetrics((x, y + 0.5))
    keras_lpc.CollapseMetrics((x, y + 0.5))  # predicted labels: y is not used


def test_labels_out_of_range_fail_before_the_first_epoch():
    x, y = _data(8)
    seen = _Seen()
    with pytest.raises(ValueError, match=r"labels in \[0, 2\) for the model's 2 outputs\. "):
        _model().fit(x, y, verbose=0, callbacks=[seen, keras_lpc.RobustnessMetrics((x, y + 10))])
    assert seen.keys == []
    onehot = np.eye(3)[y]
    with pytest.raises(ValueError, match=r"one-hot rows of width 2 .*shape \(8, 3\)"):
        _model().fit(x, y, verbose=0, callbacks=[keras_lpc.InformationMetrics((x, onehot))])


def test_swapped_pair_is_named():
    x, y = _data(8)
    with pytest.raises(ValueError, match=r"the pair looks like \(y, x\)"):
        _model().fit(x, y, verbose=0, callbacks=[keras_lpc.CollapseMetrics((y, x))])
    with pytest.raises(ValueError, match=r"is the pair in \(y, x\) order\?"):
        keras_lpc.RobustnessMetrics((y, x))


class _Subclassed(keras.Model):
    def __init__(self, fail=False):
        super().__init__()
        self.hidden = keras.layers.Dense(6)
        self.lpc = keras_lpc.LatentPointCollapse(2, name="lpc")
        self.head = keras.layers.Dense(2)
        self.fail = fail

    def call(self, x):
        z = self.lpc(self.hidden(x))
        if self.fail:
            raise RuntimeError("boom after the LPC layer")
        return self.head(z)


def test_swapped_pair_on_a_subclassed_model():
    x, y = _data(8)
    model = _Subclassed()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = keras_lpc.CollapseMetrics((y.astype("float32"), x))
    with pytest.raises(ValueError, match=r"`data` must be \(x, y\) with x the model's inputs"):
        model.fit(x, y, verbose=0, callbacks=[cb])


# -- 18.4: the two bases and one constructor form -----------------------------------------


def test_bases_and_constructor_forms():
    x, y = _data(8)
    for cls in (keras_lpc.CollapseMetrics, keras_lpc.InformationMetrics):
        cb = cls((x, y), every=2, max_samples=5, seed=3, prefix="t_")
        assert isinstance(cb, LatentMetricCallback)
        assert (cb.every, cb.max_samples, cb.seed, cb.prefix) == (2, 5, 3, "t_")
        assert len(cb.arrays()[0]) == 5
    cb = keras_lpc.RobustnessMetrics((x, y), every=2, max_samples=5, seed=3, prefix="t_")
    assert isinstance(cb, ModelMetricCallback) and not hasattr(cb, "layer")
    with pytest.warns(DeprecationWarning, match="passing every, max_samples by position"):
        old = keras_lpc.CollapseMetrics((x, y), 2, 6)
    assert (old.every, old.max_samples) == (2, 6)
    with pytest.warns(DeprecationWarning, match="`layer` is deprecated"):
        keras_lpc.RobustnessMetrics((x, y), layer="lpc")
    with pytest.raises(TypeError, match="at most 7 more positional arguments"):
        keras_lpc.CollapseMetrics((x, y), *range(8))
    with pytest.raises(
        TypeError,
        match=r"got `every` both by position and by keyword\. "
        r"Received: every=2 and every=3",
    ):
        keras_lpc.CollapseMetrics((x, y), 2, every=3)
    with pytest.warns(DeprecationWarning, match="passing every, max_samples, prefix by position"):
        info = keras_lpc.InformationMetrics((x, y), 4, 7, "i_", k=2)
    assert (info.every, info.max_samples, info.prefix, info.k) == (4, 7, "i_", 2)
    with pytest.warns(DeprecationWarning, match="passing every by position"):
        rob = keras_lpc.RobustnessMetrics(data=(x, y)), keras_lpc.RobustnessMetrics((x, y), 5)
    assert rob[1].every == 5 and rob[0].every == 10


def test_attacks_argument_logs_the_verified_minimal_perturbation(monkeypatch):
    # f_0 - f_1 = 2 x_0: the boundary x_0 = 0 lies |x_0| away, ||r|| / ||x|| = |x_0| / ||x||
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.set_weights([np.array([[1.0, -1.0], [0.0, 0.0]]), np.zeros(2)])
    x = np.array([[3.0, 4.0], [-1.0, 1.0], [0.6, -0.8]], "float32")
    y = (x[:, 0] < 0).astype("int64")
    exact = np.mean(np.abs(x[:, 0]) / np.linalg.norm(x, axis=1))
    cb = keras_lpc.RobustnessMetrics((x, y), attacks=["deepfool", "boundary"], lipschitz=False)
    cb.set_model(model)
    from keras_lpc.robustness import _registry

    # the ensemble reuses the callback's run: its own DeepFool attack must not be called
    unused = dataclasses.replace(_registry._TABLE["deepfool"], fn=None)
    monkeypatch.setitem(_registry._TABLE, "deepfool", unused)
    values = cb.evaluate()
    assert values["min_perturbation"] == pytest.approx(exact, rel=0.03)
    assert values["min_perturbation"] >= exact * (1 - 1e-5)  # verified: never inside the boundary
    # DeepFool's overshoot 0.02 makes it 2 % too long here, and the ensemble no longer
    assert values["deepfool_overestimate"] == pytest.approx(1.0, abs=0.03)
    assert values["deepfool"] == pytest.approx(exact * 1.02, rel=1e-3)


# -- datasets as data: tf.data and PyDataset, shuffled, remainder dropped -----------------


class _Shuffled(keras.utils.PyDataset):
    """(x, y) batches in a new random order every epoch; the last partial batch dropped."""

    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.order = np.random.default_rng(0).permutation(len(x))

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        return self.x[idx], self.y[idx]

    def on_epoch_end(self):
        self.order = np.random.default_rng(len(self.order)).permutation(len(self.x))


def _datasets(x, y):
    found = [("pydataset", _Shuffled(x, y, 10))]
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return found
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=1)
    return found + [("tf.data", ds.batch(10, drop_remainder=True))]


def test_datasets_give_consistent_pairs_to_every_callback():
    x, y = _data(45)
    model = _model()
    for kind, data in _datasets(x, y):
        callbacks = [
            keras_lpc.CollapseMetrics(data, labels="true"),
            keras_lpc.InformationMetrics(data, every=1),
            keras_lpc.RobustnessMetrics(data, lipschitz=False, max_samples=20),
        ]
        history = model.fit(x, y, epochs=1, verbose=0, shuffle=True, callbacks=callbacks)
        for cb in callbacks:
            xs, ys = cb.arrays()
            assert len(xs) == min(40, cb.max_samples), kind  # 4 full batches of 10
            np.testing.assert_array_equal(ys, (xs[:, 0] > 0).astype("int32"), err_msg=kind)
        xs, ys = callbacks[0].arrays()
        z = keras_lpc.latents(model, xs)
        assert history.history["val_nc1"][0] == pytest.approx(collapse_metrics(z, ys)["nc1"])
        xs, ys = callbacks[1].arrays()
        expected = information_metrics(keras_lpc.latents(model, xs), ys, standardize=True)
        assert history.history["val_entropy"][0] == pytest.approx(expected["entropy"])


def test_endless_dataset_needs_max_samples():
    tf = pytest.importorskip("tensorflow")
    x, y = _data(8)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
    cb = keras_lpc.CollapseMetrics(ds, max_samples=None)
    with pytest.raises(ValueError, match="`data` must be finite when `max_samples=None`"):
        cb.arrays()
    assert len(keras_lpc.CollapseMetrics(ds, max_samples=6).arrays()[0]) == 6


def test_tensorboard_histograms_with_the_lpc_layer(tmp_path):
    x, y = _data(32)
    model = _model()
    board = keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1)
    history = model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        validation_data=(x, y),
        callbacks=[board, keras_lpc.CollapseMetrics((x, y))],
    )
    assert "val_nc1" in history.history
    assert list((tmp_path / "train").iterdir()) and list((tmp_path / "validation").iterdir())


# -- 18.5: keras_lpc.latents on every kind of model ---------------------------------------


def test_deepcopy_shares_the_data():
    x, y = _data(8)
    cb = keras_lpc.CollapseMetrics((x, y))
    twin = copy.deepcopy(cb)
    assert twin.data is cb.data and twin.computed_epochs == []
