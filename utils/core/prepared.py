"""A data set made ready for training: split, scaled, standardised; saved and loaded as one .npz.

`prepare("fashion_mnist")` or `prepare("cifar10")` returns the dict every notebook and the
training command use; `save_prepared` / `load_prepared` pass it between notebooks without pickle.
Both hold the training and validation splits only, unless asked for the test split with
include_test=True: training and the search never see it; python -m utils evaluate and the
notebooks' final test cells read it once, at the end.
"""
import math
from pathlib import Path

import numpy as np

from utils.core import datasets
from utils.core.datasets import DATASETS
from utils.core.preprocess import scale, standardize, stratified_split
from utils.plumbing import paths
from utils.plumbing.errors import DataFileError
from utils.plumbing.files import atomic_write, read_npz
from utils.plumbing.language import _
from utils.plumbing.validate import check_bool, check_choice, check_int, is_int

MAX_PREPARED_BYTES = 2**30  # a prepared .npz: CIFAR-10's, the largest, is 737 MB
SPLITS = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")
TEST_KEYS = ("X_test", "y_test")


def prepared_path(dataset="fashion_mnist"):
    """Where notebook 01 saves the prepared data set: data_dir()/<dataset>_prepared.npz, read now."""
    return paths.data_dir() / f"{check_choice('dataset', dataset, DATASETS)}_prepared.npz"


def prepare(dataset="fashion_mnist", val_size=None, seed=0, flat=True, data_dir=None, verify=True,
            include_test=False):
    """Load a data set and make it ready for training.

    Splits val_size stratified samples off the training images (default: 6000 of Fashion-MNIST's
    60000, 5000 of CIFAR-10's 50000), scales to [0, 1], then standardizes the sets with the
    mean and std of what is left for training (the validation and test sets must not leak into them).
    Inputs: dataset "fashion_mnist" or "cifar10"; seed: integer >= 0 for the split; flat: rows
    for an MLP, else images for a conv net; data_dir, verify: as for utils.core.datasets.load_fashion_mnist;
    include_test: also read the test split (False: its files are not even opened), for the
    final test only: training and model selection use the validation split.
    Returns a dict with
    - X_train, X_val (and X_test if include_test): float32 of shape (N, C * H * W) if flat, else (N, C, H, W)
    - y_train, y_val (and y_test): int64 of shape (N,)
    - mean, std: floats, the training statistics on the [0, 1] scale
    - dataset: the name; image_shape: (C, H, W), e.g. (1, 28, 28); num_classes: 10;
      class_names: tuple of str, class k's name at index k.
    """
    spec = DATASETS[check_choice("dataset", dataset, DATASETS)]
    val_size = spec["val_size"] if val_size is None else check_int("val_size", val_size, low=1)
    seed, flat = check_int("seed", seed, low=0), check_bool("flat", flat)
    verify, include_test = check_bool("verify", verify), check_bool("include_test", include_test)
    X, y = datasets.load_split(dataset, "train", data_dir, verify)  # via the module: the tests watch it
    X_train, y_train, X_val, y_val = stratified_split(X, y, val_size, seed)
    X_train, X_val, mean, std = standardize(scale(X_train), scale(X_val))
    image_shape = spec["image_shape"]
    shape = (-1, math.prod(image_shape)) if flat else (-1, *image_shape)  # (N, C, H, W) for conv nets
    data = dict(X_train=X_train.reshape(shape), y_train=y_train, X_val=X_val.reshape(shape), y_val=y_val,
                mean=mean, std=std, dataset=dataset, image_shape=image_shape,
                num_classes=len(spec["class_names"]), class_names=spec["class_names"])
    if include_test:
        X_test, data["y_test"] = datasets.load_split(dataset, "test", data_dir, verify)
        data["X_test"] = standardize_like(scale(X_test), mean, std).reshape(shape)
    return data


def standardize_like(X, mean, std):
    """X (float32, scaled to [0, 1]) shifted and scaled by a training set's mean and std, in place,
    exactly as utils.core.preprocess.standardize treats its other arrays."""
    X -= mean
    X /= std
    return X


def prepare_fashion_mnist(val_size=6000, seed=0, flat=True, data_dir=None, verify=True, include_test=False):
    """prepare("fashion_mnist", ...): X of shape (N, 784) if flat, else (N, 1, 28, 28)."""
    return prepare("fashion_mnist", val_size, seed, flat, data_dir, verify, include_test)


def prepare_cifar10(val_size=5000, seed=0, flat=True, data_dir=None, verify=True, include_test=False):
    """prepare("cifar10", ...): X of shape (N, 3072) if flat, else (N, 3, 32, 32)."""
    return prepare("cifar10", val_size, seed, flat, data_dir, verify, include_test)


def save_prepared(data, path=None):
    """Write a dict of arrays, numbers and strings to an .npz file, atomically.

    data: dict name -> array, number, str or tuple of str (no objects: load_prepared refuses
    pickles). path: default prepared_path(). Returns the path written.
    """
    path = prepared_path() if path is None else Path(path)
    for k, v in data.items():
        if np.asarray(v).dtype == object:
            raise ValueError(_("save_prepared: data[{key}] is not numeric, load_prepared could not read it "
                               "back").format(key=repr(k)))
    with atomic_write(path) as f:  # a reader never sees a half-written file
        np.savez(f, **data)  # a file object, so savez does not append ".npz"
    return path


def load_prepared(path=None, include_test=False):
    """Read a dict written by save_prepared (path: default prepared_path()).

    Returns dict name -> array; numbers and strings saved as scalars come back as Python
    numbers and str (e.g. "mean", "std", "dataset"), image_shape and class_names as tuples.
    X_test and y_test are left out unless include_test (then a file without them is an error):
    training and the search read this file too, and must not see the test split.
    A file written before image_shape, num_classes and class_names were saved gets them from
    the shape of its images. Raises DataFileError naming the file if it is corrupt, too large
    or holds anything but arrays.
    """
    path = prepared_path() if path is None else Path(path)
    if not path.exists():
        raise FileNotFoundError(_("{path} not found: run notebooks/01_data_preparation.ipynb first or call "
                                  "prepare_fashion_mnist()").format(path=path))
    include_test = check_bool("include_test", include_test)
    arrays = read_npz(path, MAX_PREPARED_BYTES, MAX_PREPARED_BYTES, what=_("a prepared data set (.npz)"))
    data = _data_set_info({k: v.item() if v.ndim == 0 else v for k, v in arrays.items()}, path)
    if include_test and not all(k in data for k in TEST_KEYS):
        raise DataFileError(_("{path} holds no test split (X_test, y_test): save it with prepare(..., "
                              "include_test=True), or test with python -m utils evaluate").format(path=path))
    return data if include_test else {k: v for k, v in data.items() if k not in TEST_KEYS}


def _data_set_info(data, path):
    """Check image_shape, class_names, num_classes, dataset as stored, or fill them in for an old file."""
    if "image_shape" in data:
        shape = np.asarray(data["image_shape"])
        if shape.ndim != 1 or len(shape) != 3 or shape.dtype.kind not in "iu" or (shape < 1).any():
            raise DataFileError(_("{path}: image_shape is {value}, expected three positive integers (C, H, "
                                  "W)").format(path=path, value=repr(data['image_shape'])))
        data["image_shape"] = tuple(int(n) for n in shape)
    elif all(k in data for k in SPLITS):  # written before these keys existed: tell them from the images
        sample = np.shape(data["X_train"])[1:]
        found = [name for name, spec in DATASETS.items()
                 if sample in (spec["image_shape"], (math.prod(spec["image_shape"]),))]
        if found:
            spec = DATASETS[found[0]]
            data.update(dataset=found[0], image_shape=spec["image_shape"],
                        num_classes=len(spec["class_names"]), class_names=spec["class_names"])
    if "class_names" in data:
        names = np.asarray(data["class_names"])
        if names.ndim != 1 or names.dtype.kind != "U":
            raise DataFileError(_("{path}: class_names must be a list of strings, got {dtype} of shape "
                                  "{shape}").format(path=path, dtype=names.dtype, shape=names.shape))
        data["class_names"] = tuple(str(n) for n in names)
    if "num_classes" in data:
        n = data["num_classes"]
        if not (is_int(n) and n >= 1 and len(data.get("class_names", range(n))) == n):
            raise DataFileError(_("{path}: num_classes is {value}, expected a positive integer equal to the "
                                  "number of class names").format(path=path, value=repr(n)))
    if "image_shape" in data:
        for k in ("X_train", "X_val", "X_test"):
            sample = np.shape(data.get(k, np.empty((0, *data["image_shape"]))))[1:]
            if sample not in (data["image_shape"], (math.prod(data["image_shape"]),)):
                raise DataFileError(_("{path}: {key} holds samples of shape {sample}, expected {shape} or flat "
                                      "rows of {n}").format(path=path, key=k, sample=sample,
                                                            shape=data['image_shape'],
                                                            n=math.prod(data['image_shape'])))
    if "dataset" in data and not isinstance(data["dataset"], str):
        raise DataFileError(_("{path}: dataset is {value}, expected a name").format(
            path=path, value=repr(data['dataset'])))
    for split in ("train", "val", "test"):
        X, y = data.get(f"X_{split}"), data.get(f"y_{split}")
        if X is not None and (not isinstance(X, np.ndarray) or X.dtype.kind != "f" or X.ndim < 2):
            raise DataFileError(_("{path}: {key} is {dtype} of shape {shape}, expected floating-point samples "
                                  "(N, ...)").format(path=path, key=f"X_{split}",
                                                     dtype=getattr(X, 'dtype', type(X).__name__), shape=np.shape(X)))
        if y is not None and (not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.ndim != 1
                              or (y.size and not 0 <= y.min() <= y.max() < data.get("num_classes", 2**31))):
            raise DataFileError(_("{path}: {key} must be integer labels (N,) in 0..num_classes - 1, got {dtype} "
                                  "of shape {shape}").format(path=path, key=f"y_{split}",
                                                             dtype=getattr(y, 'dtype', type(y).__name__),
                                                             shape=np.shape(y)))
        if X is not None and y is not None and len(X) != len(y):
            raise DataFileError(_("{path}: {X} holds {n} samples but {y} holds {m} labels").format(
                path=path, X=f"X_{split}", n=len(X), y=f"y_{split}", m=len(y)))
    return data
