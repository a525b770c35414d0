"""Preprocessing: raw uint8 images -> float32 arrays for training, the validation split, mirroring.

float32 halves memory and time against float64, and the network trains in float32.
utils.core.prepared.prepare chains these steps the way the notebooks use them.
"""
import math

import numpy as np

from utils.plumbing.validate import check_int


def _as_float32(X):
    return np.array(X, dtype=np.float32, order="C")  # always a copy, never a view


def scale(X):
    """Map pixel values 0..255 to [0, 1].

    X: uint8 array of any shape. Returns a float32 array of the same shape.
    """
    if X.dtype != np.uint8:
        # Scaling twice would silently divide by 255 again.
        raise TypeError(f"scale expects uint8 pixels, got {X.dtype}")
    X = _as_float32(X)
    X /= 255  # in place: `X / 255.0` on uint8 would give float64
    return X


def standardize(X_train, *others):
    """Shift and scale every array by the mean and std of X_train.

    One scalar mean and std over all pixels, not one per pixel: border pixels are
    almost always 0, and dividing by their ~0 std would blow up noise.
    Inputs: X_train of shape (N, ...); others: arrays (e.g. X_val, X_test) of any shape.
    Returns (X_train_std, *others_std, mean, std): float32 arrays, then two floats.
    """
    # float32 is enough here: NumPy sums pairwise, so the result matches float64 to ~1e-7.
    mean, std = float(X_train.mean()), float(X_train.std())
    if std == 0:
        raise ValueError("standardize: X_train is constant (std 0)")
    out = []
    for X in (X_train, *others):
        X = _as_float32(X)
        X -= mean
        X /= std
        out.append(X)
    return (*out, mean, std)


def flatten(X):
    """Flatten each sample into a vector.

    X: array of shape (N, d_1, ..., d_k). Returns float32 of shape (N, d_1 * ... * d_k).
    """
    return _as_float32(X.reshape(len(X), -1))


def stratified_split(X, y, val_size=6000, seed=0):
    """Split off a validation set in which each class keeps its share.

    Per-class counts are val_size * class share, rounded so they add up to
    val_size (largest remainders first). Samples keep their original order.
    Inputs:
    - X: array of shape (N, ...); y: labels of shape (N,)
    - val_size: number of validation samples, 0 < val_size < N
    - seed: seed (an integer >= 0) for np.random.default_rng; same seed, same split.
    Returns X_train, y_train, X_val, y_val: new arrays, dtypes as given,
    of N - val_size and val_size samples.
    """
    val_size = check_int("val_size", val_size)  # a TypeError (and ValueError) for 0.1, "6000", True
    seed = check_int("seed", seed, low=0)
    if len(X) != len(y):
        raise ValueError(f"X holds {len(X)} samples but y holds {len(y)}")
    if not 0 < val_size < len(X):
        raise ValueError(f"val_size must be between 1 and {len(X) - 1}, got {val_size}")
    rng = np.random.default_rng(seed)
    _, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = val_size * counts / len(y)
    n_val = np.floor(quota).astype(np.int64)
    n_val[np.argsort(n_val - quota, kind="stable")[:val_size - n_val.sum()]] += 1
    is_val = np.zeros(len(y), dtype=bool)
    for k, n in enumerate(n_val):
        is_val[rng.permutation(np.flatnonzero(y_idx == k))[:n]] = True
    return X[~is_val], y[~is_val], X[is_val], y[is_val]


def mirror(X, image_shape=None):
    """Every image mirrored left to right: a coat mirrored is still a coat.

    X: images (N, ..., W), or flat rows (N, C * H * W) with image_shape=(C, H, W) (or (H, W)).
    Returns a new array of X's shape and dtype.
    """
    if image_shape is None:
        if X.ndim < 3:
            raise ValueError(f"mirror: X of shape {X.shape} holds flat rows; pass image_shape, "
                             f"e.g. (1, 28, 28)")
        return X[..., ::-1].copy()
    if X.ndim != 2 or X.shape[1] != math.prod(image_shape):
        raise ValueError(f"mirror: image_shape {tuple(image_shape)} needs rows of "
                         f"{math.prod(image_shape)} values, got X of shape {X.shape}")
    return X.reshape(len(X), *image_shape)[..., ::-1].reshape(X.shape)


def mirrored_copies(X, y, image_shape=None):
    """The training set doubled: every image, then every image mirrored (data augmentation).

    X: images (N, ..., W) or flat rows (N, D) with image_shape (C, H, W); y: labels (N,).
    Returns (X_aug (2N, ...), y_aug (2N,)): the same arrays as
    np.concatenate([X, X[..., ::-1]]) for images, labels repeated.
    """
    if len(X) != len(y):
        raise ValueError(f"mirrored_copies: X holds {len(X)} samples but y holds {len(y)}")
    flipped = X[..., ::-1] if X.ndim >= 3 else mirror(X, image_shape)
    return np.concatenate([X, flipped]), np.concatenate([y, y])
