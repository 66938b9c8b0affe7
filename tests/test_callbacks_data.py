"""keras_lpc.callbacks._data: the metric callbacks' data, checked before training (labels,
the (x, y) order) and read from arrays, tf.data and PyDataset alike."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from _callback_models import Seen, lpc_model, small_data

import keras_lpc
from keras_lpc.metrics import collapse_metrics, information_metrics


def test_non_integer_labels_fail_at_construction():
    x, y = small_data(8)
    with pytest.raises(ValueError, match=r"`data`: `y` must hold integer class ids\. Received"):
        keras_lpc.CollapseMetrics((x, y + 0.5), labels="true")
    with pytest.raises(ValueError, match="`data`: `y` must hold integer class ids"):
        keras_lpc.InformationMetrics((x, y + 0.5))
    keras_lpc.CollapseMetrics((x, y + 0.5))  # predicted labels: y is not used


def test_labels_out_of_range_fail_before_the_first_epoch():
    x, y = small_data(8)
    seen = Seen()
    with pytest.raises(ValueError, match=r"labels in \[0, 2\) for the model's 2 outputs\. "):
        lpc_model().fit(x, y, verbose=0, callbacks=[seen, keras_lpc.RobustnessMetrics((x, y + 10))])
    assert seen.keys == []
    onehot = np.eye(3)[y]
    with pytest.raises(ValueError, match=r"one-hot rows of width 2 .*shape \(8, 3\)"):
        lpc_model().fit(x, y, verbose=0, callbacks=[keras_lpc.InformationMetrics((x, onehot))])


def test_swapped_pair_is_named():
    x, y = small_data(8)
    with pytest.raises(ValueError, match=r"the pair looks like \(y, x\)"):
        lpc_model().fit(x, y, verbose=0, callbacks=[keras_lpc.CollapseMetrics((y, x))])
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
    x, y = small_data(8)
    model = _Subclassed()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = keras_lpc.CollapseMetrics((y.astype("float32"), x))
    with pytest.raises(ValueError, match=r"`data` must be \(x, y\) with x the model's inputs"):
        model.fit(x, y, verbose=0, callbacks=[cb])


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
    x, y = small_data(45)
    model = lpc_model()
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
    x, y = small_data(8)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
    cb = keras_lpc.CollapseMetrics(ds, max_samples=None)
    with pytest.raises(ValueError, match="`data` must be finite when `max_samples=None`"):
        cb.arrays()
    assert len(keras_lpc.CollapseMetrics(ds, max_samples=6).arrays()[0]) == 6
