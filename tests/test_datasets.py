"""keras_lpc.datasets: digits split, hypercube clusters, tfds loaders under mock data."""

from __future__ import annotations

import sys

import keras
import numpy as np
import pytest

from keras_lpc import datasets
from keras_lpc.datasets import TFDS_DATASETS, load_digits, load_tfds, make_hypercube_clusters

# ---------------------------------------------------------------- digits


def test_digits_shapes_range_and_partition():
    from sklearn.datasets import load_digits as sk_digits

    data = load_digits(test_size=0.25)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert len(data.x_train) + len(data.x_test) == 1797
    assert len(data.x_test) == 450  # ceil(0.25 * 1797)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    # Train and test together are exactly the original samples, scaled by 1/16.
    both = np.concatenate([data.x_train, data.x_test]) * 16
    labels = np.concatenate([data.y_train, data.y_test])
    raw = sk_digits()
    key = lambda x, y: np.lexsort(np.column_stack([x, y]).T)  # noqa: E731
    got = np.column_stack([both, labels])[key(both, labels)]
    want = np.column_stack([raw.data, raw.target])[key(raw.data, raw.target)]
    np.testing.assert_array_equal(got, want)


def test_digits_split_is_stratified_and_deterministic():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)
    # Each class keeps its share of the data in the test part, up to rounding.
    full = np.bincount(np.concatenate([a.y_train, a.y_test]))
    np.testing.assert_allclose(np.bincount(a.y_test), 0.2 * full, atol=1)


def test_digits_as_images_is_a_reshape():
    flat, images = load_digits(), load_digits(as_images=True)
    assert images.x_train.shape == (1437, 8, 8, 1)
    np.testing.assert_array_equal(images.x_test.reshape(-1, 64), flat.x_test)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"test_size": 0},
            ValueError,
            r"`test_size` must be a positive number. Received: test_size=0",
        ),
        ({"test_size": 1.5}, ValueError, r"`test_size` must be a number in \(0, 1\)"),
        ({"test_size": "a"}, TypeError, r"`test_size` must be a real number. Received"),
        ({"seed": -1}, ValueError, r"`seed` must be an integer >= 0. Received: seed=-1"),
    ],
)
def test_digits_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_digits(**kwargs)


# ------------------------------------------------------------- hypercube


def test_hypercube_balanced_distinct_vertices():
    data = make_hypercube_clusters(n=10, d=3, classes=3, noise=0.5, seed=3)
    assert data.x.shape == (10, 3) and data.x.dtype == np.float32
    assert sorted(np.bincount(data.y).tolist()) == [3, 3, 4]
    assert np.all(np.abs(data.centres) == 1)
    assert len({tuple(c) for c in data.centres.tolist()}) == 3


def test_hypercube_noise_free_points_sit_on_centres():
    data = make_hypercube_clusters(n=40, d=4, classes=16, noise=0.0)
    np.testing.assert_array_equal(data.x, data.centres[data.y])
    # 16 classes in 4 dimensions: every vertex of the hypercube is used once.
    assert len({tuple(c) for c in data.centres.tolist()}) == 16


def test_hypercube_noise_is_gaussian_with_given_std():
    data = make_hypercube_clusters(n=20000, d=2, classes=2, noise=0.3, seed=1)
    residual = data.x - data.centres[data.y]
    np.testing.assert_allclose(residual.std(axis=0), 0.3, rtol=0.03)
    np.testing.assert_allclose(residual.mean(axis=0), 0.0, atol=0.01)


def test_hypercube_is_deterministic_and_high_dimensional():
    a = make_hypercube_clusters(n=50, d=80, classes=50, noise=0.1, seed=7)
    b = make_hypercube_clusters(n=50, d=80, classes=50, noise=0.1, seed=7)
    np.testing.assert_array_equal(a.x, b.x)
    assert len({tuple(c) for c in a.centres.tolist()}) == 50
    c = make_hypercube_clusters(n=50, d=80, classes=50, noise=0.1, seed=8)
    assert not np.array_equal(a.x, c.x)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"classes": 9}, ValueError, r"`classes` must be <= 2\*\*d = 8 .* Received: classes=9"),
        ({"n": 3}, ValueError, r"`n` must be >= classes = 4 .* Received: n=3"),
        ({"noise": -0.1}, ValueError, r"`noise` must be a number >= 0. Received: noise=-0.1"),
        ({"d": 0}, ValueError, r"`d` must be an integer >= 1. Received: d=0"),
        ({"d": 2.5}, TypeError, r"`d` must be an integer >= 1. Received: d=2.5"),
    ],
)
def test_hypercube_bad_arguments(kwargs, error, match):
    args = {"n": 10, "d": 3, "classes": 4, "noise": 0.1} | kwargs
    with pytest.raises(error, match=match):
        make_hypercube_clusters(**args)


# ------------------------------------------------------------------ tfds


@pytest.fixture
def tfds():
    return pytest.importorskip("tensorflow_datasets")


def _raw(tfds, name, split="train"):
    ds = tfds.load(name, split=split, as_supervised=True, shuffle_files=False)
    pairs = list(tfds.as_numpy(ds))
    return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs])


@pytest.mark.parametrize("name", sorted(TFDS_DATASETS))
def test_tfds_batches_shapes_dtypes(tfds, name):
    spec = TFDS_DATASETS[name]
    with tfds.testing.mock_data(num_examples=6):
        batches = [(np.asarray(x), np.asarray(y)) for x, y in load_tfds(name, batch_size=4)]
    assert [b[0].shape for b in batches] == [(4, *spec["shape"]), (2, *spec["shape"])]
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int32
    labels = np.concatenate([b[1] for b in batches])
    assert labels.min() >= 0 and labels.max() < spec["classes"]


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_tfds_normalisation_inverts_to_raw_pixels(tfds, name):
    spec = TFDS_DATASETS[name]
    with tfds.testing.mock_data(num_examples=5):
        x, y = load_tfds(name, split="test", as_numpy=True)
        raw_x, raw_y = _raw(tfds, name, "test")
    # (pixel / 255 - mean) / std, per channel.
    want = (raw_x / 255.0 - np.array(spec["mean"])) / np.array(spec["std"])
    np.testing.assert_allclose(x, want, atol=1e-5)
    np.testing.assert_array_equal(y, raw_y)
    # Statistics of the mock data (uniform pixels in 0..255: mean 127.5).
    expected_mean = (127.5 / 255 - np.array(spec["mean"])) / np.array(spec["std"])
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), expected_mean, atol=0.1)


def _is_shifted_copy(aug, orig, pad, flip):
    """True if ``aug`` is ``orig`` (optionally mirrored) shifted by <= pad, zero-filled."""
    h, w = orig.shape[:2]
    padded = np.pad(orig, ((pad, pad), (pad, pad), (0, 0)))
    candidates = [padded, padded[:, ::-1]] if flip else [padded]
    for image in candidates:
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                if np.allclose(image[dy : dy + h, dx : dx + w], aug, atol=1e-4):
                    return True
    return False


@pytest.mark.parametrize("name", ["cifar10", "svhn_cropped"])
def test_tfds_augmentation_is_crop_and_flip(tfds, name):
    spec = TFDS_DATASETS[name]
    mean, std = np.array(spec["mean"]), np.array(spec["std"])
    with tfds.testing.mock_data(num_examples=4):
        ds = load_tfds(name, batch_size=4, augment=True, shuffle=False, seed=5)
        (aug, _), (again, _) = next(iter(ds)), next(iter(ds))
        raw, _ = _raw(tfds, name)
    aug, again = np.asarray(aug), np.asarray(again)
    assert aug.shape == (4, *spec["shape"])
    pixels = (aug * std + mean) * 255.0  # back to raw units
    for a, o in zip(pixels, raw.astype(np.float64)):
        assert _is_shifted_copy(a, o, pad=4, flip=spec["flip"])
    if not spec["flip"]:
        assert not any(_is_shifted_copy(a, o[:, ::-1], 0, False) for a, o in zip(pixels, raw))
    # A second pass draws new crops.
    assert not np.array_equal(aug, again)


def test_tfds_same_seed_same_batches(tfds):
    def first_epoch(seed):
        ds = load_tfds("cifar10", batch_size=3, seed=seed)
        return np.concatenate([np.asarray(x) for x, _ in ds])

    with tfds.testing.mock_data(num_examples=6):
        a, b, c = first_epoch(1), first_epoch(1), first_epoch(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_tfds_dataset_trains_under_current_backend(tfds):
    # The 8 mock images in one batch, zero weights, plain SGD: the step's loss is ln 10
    # (uniform logits) and it moves the weights by -lr times the mean cross-entropy's
    # gradient, X^T (1/10 - onehot(y)) / 8 for the kernel and mean(1/10 - onehot(y)) for
    # the bias, X the normalised pixels (order within the batch does not matter).
    lr = 0.5
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, kernel_initializer="zeros"),
        ]
    )
    model.compile(
        keras.optimizers.SGD(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    with tfds.testing.mock_data(num_examples=8):
        ds = load_tfds("mnist", batch_size=8, augment=False)
        ((x, y),) = [(np.asarray(a), np.asarray(b)) for a, b in ds]
        _, raw_y = _raw(tfds, "mnist")
        history = model.fit(ds, epochs=1, verbose=0)
    assert x.shape == (8, 28, 28, 1) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(np.sort(y), np.sort(raw_y))  # every label, once
    assert history.history["loss"] == [pytest.approx(np.log(10.0), rel=1e-6)]
    residual = 0.1 - np.eye(10)[y]
    kernel = -lr * x.reshape(8, -1).astype(np.float64).T @ residual / 8
    bias = -lr * residual.mean(axis=0)
    dense = model.layers[-1]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(dense.bias), bias, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(dense.kernel), kernel, atol=1e-5)
    assert np.abs(kernel).max() > 0.1  # a step that moved the kernel


def test_tfds_missing_data_says_what_to_do(tfds, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)download_and_prepare\(\).*data_dir"):
        load_tfds("mnist", data_dir=tmp_path, download=False)


def test_tfds_failed_download_says_what_to_do(tfds, tmp_path, monkeypatch):
    def offline(self, *args, **kwargs):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(
        FileNotFoundError, match=r"(?s)OSError: Temporary failure.*download_and_prep"
    ):
        load_tfds("mnist", data_dir=tmp_path)


def test_tfds_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'keras-lpc\[data\]'"):
        load_tfds("mnist")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "imagenet"}, ValueError, r"`name` must be one of 'cifar10'.*name='imagenet'"),
        ({"split": 3}, TypeError, r"`split` must be a non-empty string. Received: split=3"),
        ({"batch_size": 0}, ValueError, r"`batch_size` must be an integer >= 1"),
        ({"augment": True, "as_numpy": True}, ValueError, r"`augment` must be False"),
    ],
)
def test_tfds_bad_arguments(kwargs, error, match):
    args = {"name": "mnist"} | kwargs
    with pytest.raises(error, match=match):
        load_tfds(**args)


def test_importing_does_not_import_tfds_or_matplotlib(fresh_python):
    # a new process (conftest.py's fresh_python); keras itself may import matplotlib, so
    # only what our modules add after `import keras, keras_lpc` counts
    assert fresh_python["added_by_datasets_and_plotting"] == []
    assert "load_tfds" in datasets.__all__


class _FakeBuilder:
    """A tfds builder whose lazy imports fail at ``where`` ("builder" or "prepare")."""

    def __init__(self, where):
        self.where = where

    def _fail(self):
        raise ModuleNotFoundError(
            "No module named 'importlib_resources'", name="importlib_resources"
        )

    def is_prepared(self):
        if self.where == "builder":
            self._fail()
        return False

    def download_and_prepare(self):
        self._fail()


@pytest.mark.parametrize(("where", "stage"), [("builder", "opening"), ("prepare", "preparing")])
def test_tfds_missing_module_is_reported_as_such_not_as_missing_data(monkeypatch, where, stage):
    """tfds imports importlib_resources lazily: its absence is named, not blamed on the data."""
    from keras_lpc.backend import tf_data

    class FakeTfds:
        @staticmethod
        def builder(name, data_dir=None):
            return _FakeBuilder(where)

    monkeypatch.setattr(tf_data, "require_tfds", lambda: (None, FakeTfds))
    with pytest.raises(ImportError) as info:
        load_tfds("cifar10", data_dir="/nowhere")
    assert not isinstance(info.value, FileNotFoundError)
    assert str(info.value) == (
        f"tensorflow-datasets could not import the module 'importlib_resources' while {stage} "
        "'cifar10' (ModuleNotFoundError: No module named 'importlib_resources'). This is a "
        "missing package, not missing data: install it (`pip install importlib-resources`) "
        "and retry."
    )
    assert info.value.name == "importlib_resources"
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
