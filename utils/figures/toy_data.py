"""Small data sets for the playground: four 2-D problems and a 5,000-image Fashion-MNIST subset.

Every function takes a seeded np.random.Generator (or a seed) and returns a dict with
X_train, y_train, X_val, y_val (float32 inputs, int64 labels) and image_shape (None for
2-D points), the shape of data utils.core.prepared prepares.
"""
import numpy as np

from utils.core.datasets import CLASS_NAMES
from utils.core.prepared import load_prepared, prepare_fashion_mnist, prepared_path
from utils.plumbing.language import _
from utils.plumbing.validate import check_rng

TOY_SETS = ("spirals", "circles", "xor", "gaussians")
DATASETS = TOY_SETS + ("fashion_mnist",)


def spirals(n, noise, rng):
    """Two interleaved spirals, one and a half turns each; noise: std of the points' jitter."""
    half = n // 2
    t = np.sqrt(rng.random(n)) * 3 * np.pi  # sqrt: points spread evenly along the arm, not bunched at the centre
    y = (np.arange(n) >= half).astype(np.int64)
    angle = t + np.pi * y
    X = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1) / (3 * np.pi)
    return X + noise * rng.standard_normal(X.shape), y


def circles(n, noise, rng):
    """A disc (class 0) inside a ring (class 1)."""
    y = (np.arange(n) >= n // 2).astype(np.int64)
    radius = np.where(y == 0, rng.random(n) * 0.45, 0.65 + rng.random(n) * 0.35)
    angle = rng.random(n) * 2 * np.pi
    X = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return X + noise * rng.standard_normal(X.shape), y


def xor(n, noise, rng):
    """Points in [-1, 1]^2, class 1 where x1 and x2 have the same sign: no straight line separates them."""
    X = rng.uniform(-1, 1, (n, 2))
    X += np.sign(X) * 0.05  # a small gap along the axes, so the noise-free classes are cleanly separable
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return X + noise * rng.standard_normal(X.shape), y


def gaussians(n, noise, rng):
    """Two Gaussian blobs; the noise widens them until they overlap."""
    y = (np.arange(n) >= n // 2).astype(np.int64)
    centres = np.array([[-0.5, -0.5], [0.5, 0.5]])
    return centres[y] + (0.15 + noise) * rng.standard_normal((n, 2)), y


MAKERS = {"spirals": spirals, "circles": circles, "xor": xor, "gaussians": gaussians}


def make_toy(name, n=400, noise=0.1, val_share=0.5, rng=0):
    """A 2-D toy data set split into training and validation points.

    name: one of TOY_SETS; n: number of points, half per class; noise: std of the Gaussian
    jitter (in units of the data's extent, about [-1, 1]); val_share: share of points held out.
    Returns dict X_train (n_train, 2), y_train (n_train,), X_val, y_val, image_shape None.
    """
    if name not in MAKERS:
        raise ValueError(_("unknown toy data set {name}; choose one of {names}").format(name=repr(name),
                                                                                      names=", ".join(TOY_SETS)))
    if not 0 <= noise <= 1:
        raise ValueError(_("noise must be in [0, 1], got {noise}").format(noise=noise))
    if not 0 < val_share < 1:
        raise ValueError(_("val_share must be in (0, 1), got {val_share}").format(val_share=val_share))
    if n < 4:
        raise ValueError(_("n must be at least 4 points, got {n}").format(n=n))
    rng = check_rng("rng", rng)
    X, y = MAKERS[name](n, noise, rng)
    order = rng.permutation(n)
    n_val = max(1, min(n - 1, round(n * val_share)))
    val, tr = order[:n_val], order[n_val:]
    X = X.astype(np.float32)
    return {"X_train": X[tr], "y_train": y[tr], "X_val": X[val], "y_val": y[val], "image_shape": None}


def fashion_subset(n_train=5000, n_val=1000, rng=0):
    """A random subset of the prepared Fashion-MNIST data: flat standardised (N, 784) images.

    Reads notebook 01's prepared file if it exists, else prepares the data (a few seconds).
    Returns the dict make_toy returns, with image_shape (28, 28) and class_names.
    """
    path = prepared_path()
    data = load_prepared(path) if path.is_file() else prepare_fashion_mnist()
    rng = check_rng("rng", rng)
    if not (1 <= n_train <= len(data["y_train"]) and 1 <= n_val <= len(data["y_val"])):
        raise ValueError(_("n_train and n_val must be in [1, {train}] and [1, {val}], got {n_train} and {n_val}")
                         .format(train=len(data["y_train"]), val=len(data["y_val"]), n_train=n_train, n_val=n_val))
    tr = np.sort(rng.permutation(len(data["y_train"]))[:n_train])
    val = np.sort(rng.permutation(len(data["y_val"]))[:n_val])
    return {"X_train": data["X_train"][tr].reshape(n_train, -1), "y_train": data["y_train"][tr],
            "X_val": data["X_val"][val].reshape(n_val, -1), "y_val": data["y_val"][val],
            "image_shape": (28, 28), "class_names": list(CLASS_NAMES)}


def make_dataset(name, noise=0.1, val_share=0.5, n=400, rng=0):
    """The playground's data: a toy set by name, or "fashion_mnist" (noise and val_share do not apply)."""
    if name == "fashion_mnist":
        return fashion_subset(rng=rng)
    if name not in MAKERS:
        raise ValueError(_("unknown data set {name}; choose one of {names}").format(name=repr(name),
                                                                                  names=", ".join(DATASETS)))
    return make_toy(name, n, noise, val_share, rng)
