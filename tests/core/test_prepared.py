"""utils/core/prepared.py and utils/core/preprocess.py: one prepare() for any data set, the data set's
description (image shape, classes) saved with it, argument checks, mirrored copies, paths read when used."""
import zipfile

import numpy as np
import pytest

from tests.core.test_data import write_tiny_set
from utils.core import datasets as data
from utils.core.datasets import CIFAR10_CLASSES, CLASS_NAMES
from utils.core.prepared import load_prepared, prepare, prepare_fashion_mnist, prepared_path, save_prepared
from utils.core.preprocess import mirror, mirrored_copies
from utils.plumbing.validate import ArgumentTypeError


def test_prepare_describes_the_data_set_and_round_trips_as_notebook_01_checks(tmp_path):
    write_tiny_set(tmp_path, n_train=60)
    d = prepare("fashion_mnist", val_size=20, data_dir=tmp_path, verify=False)
    assert d["dataset"] == "fashion_mnist" and d["image_shape"] == (1, 28, 28) and d["num_classes"] == 10
    assert d["class_names"] == CLASS_NAMES and d["X_train"].shape == (40, 784)
    same = prepare_fashion_mnist(val_size=20, data_dir=tmp_path, verify=False)
    assert all(np.array_equal(same[k], d[k]) for k in d)
    reloaded = load_prepared(save_prepared(d, tmp_path / "p.npz"))
    assert reloaded.keys() == d.keys() and all(np.array_equal(reloaded[k], d[k]) for k in d)
    assert reloaded["image_shape"] == (1, 28, 28) and reloaded["class_names"] == CLASS_NAMES


def test_paths_follow_the_environment_when_read(tmp_path, monkeypatch):
    from utils.plumbing import paths
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("NN_LOG_DIR", str(tmp_path / "l"))
    assert paths.data_dir() == tmp_path / "d" and paths.log_dir() == tmp_path / "l"
    assert prepared_path() == tmp_path / "d" / "fashion_mnist_prepared.npz"
    assert prepared_path("cifar10") == tmp_path / "d" / "cifar10_prepared.npz"
    assert data.cifar10_dir() == tmp_path / "d" / "cifar10"
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "e"))
    assert data.fashion_dir() == tmp_path / "e" / "fashion"
    with pytest.raises(FileNotFoundError, match="e/fashion_mnist_prepared.npz not found"):
        load_prepared()  # the default path is read now, not at import


def test_mirror_flips_flat_rows_left_to_right():
    X = np.arange(4 * 6, dtype=np.float32).reshape(4, 6)  # 4 flat 2x3 images
    flipped = mirror(X, (1, 2, 3))
    assert np.array_equal(flipped.reshape(4, 2, 3), X.reshape(4, 2, 3)[..., ::-1])
    X_aug, y_aug = mirrored_copies(X, np.arange(4), (1, 2, 3))
    assert np.array_equal(X_aug, np.concatenate([X, flipped])) and list(y_aug) == [0, 1, 2, 3] * 2


def test_new_keys_round_trip_and_old_files_get_them(tmp_path):
    d = dict(X_train=np.zeros((4, 3072), np.float32), y_train=np.arange(4), X_val=np.zeros((2, 3072), np.float32),
             y_val=np.arange(2), X_test=np.zeros((2, 3072), np.float32), y_test=np.arange(2), mean=0.5, std=0.25)
    save_prepared(d, tmp_path / "old.npz")  # as notebook 01 wrote it before the new keys
    old = load_prepared(tmp_path / "old.npz")
    assert old["image_shape"] == (3, 32, 32) and old["class_names"] == CIFAR10_CLASSES
    assert old["num_classes"] == 10 and old["dataset"] == "cifar10"
    new = {**d, "dataset": "fashion_mnist", "image_shape": (1, 28, 28), "num_classes": 10,
           "class_names": data.CLASS_NAMES, "X_train": np.zeros((4, 1, 28, 28), np.float32)}
    del new["X_val"], new["X_test"]
    out = load_prepared(save_prepared(new, tmp_path / "new.npz"))
    assert out["image_shape"] == (1, 28, 28) and out["class_names"] == data.CLASS_NAMES
    assert out["dataset"] == "fashion_mnist" and isinstance(out["dataset"], str) and out["num_classes"] == 10
    with zipfile.ZipFile(tmp_path / "new.npz") as z:
        assert all(b"pickle" not in z.read(n)[:200] for n in z.namelist())


@pytest.mark.parametrize("kwargs, error, words", [
    ({"dataset": "cifar"}, ValueError, "dataset must be one of 'fashion_mnist', 'cifar10', got 'cifar'"),
    ({"val_size": 0.1}, ArgumentTypeError, r"val_size must be an integer >= 1, got 0\.1 \(float\)"),
    ({"val_size": "6000"}, ArgumentTypeError, "val_size must be an integer >= 1, got '6000'"),
    ({"val_size": True}, ArgumentTypeError, "val_size must be an integer >= 1, got True"),
    ({"val_size": 0}, ValueError, "val_size must be an integer >= 1, got 0"),
    ({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
    ({"seed": None}, ArgumentTypeError, "seed must be an integer >= 0, got None"),
    ({"flat": "no"}, ArgumentTypeError, "flat must be True or False, got 'no'"),
    ({"verify": 1}, ArgumentTypeError, "verify must be True or False, got 1"),
])
def test_prepare_checks_its_arguments_before_loading(kwargs, error, words, tmp_path):
    with pytest.raises(error, match=words):
        prepare(**{"data_dir": tmp_path / "nothing here", **kwargs})
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


def test_mirrored_copies_are_the_arrays_notebook_05_builds():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((5, 3, 4, 6)).astype(np.float32), np.arange(5)
    X_aug, y_aug = mirrored_copies(X, y)
    assert np.array_equal(X_aug, np.concatenate([X, X[..., ::-1]])) and X_aug.dtype == np.float32
    assert y_aug.tolist() == [0, 1, 2, 3, 4] * 2
    flat_aug, _ = mirrored_copies(X.reshape(5, -1), y, (3, 4, 6))  # flat rows: same images
    assert np.array_equal(flat_aug, X_aug.reshape(10, -1))
    with pytest.raises(ValueError, match="pass image_shape"):
        mirrored_copies(X.reshape(5, -1), y)
    with pytest.raises(ValueError, match=r"image_shape \(1, 28, 28\) needs rows of 784 values"):
        mirrored_copies(X.reshape(5, -1), y, (1, 28, 28))
