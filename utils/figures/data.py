"""Figures of the data (notebook 01) and the helpers every image figure shares.

Image shapes come from the data, never from a constant: pass image_shape (C, H, W), e.g.
data["image_shape"], or let it be told from the array (N, C, H, W), (N, H, W), or flat rows of
a known data set's size. Grey images are drawn as stored, black 0 to white (GREY_NOTE), the
same way round as the class means' colour map (dark background, bright garment); colour ones
(C = 3) as RGB.
"""
import math

import matplotlib.pyplot as plt
import numpy as np

from utils.core.datasets import CLASS_NAMES, DATASETS
from utils.plumbing.fonts import label, labels
from utils.plumbing.language import _

GREY_NOTE = "grey scale: black = 0, white = 255"  # uint8 images; other dtypes: each image from its min to max


def grid_shape(n):
    """(rows, cols) with rows * cols == n and rows <= cols, as square as possible: 784 -> (28, 28), 10 -> (2, 5)."""
    rows = max(d for d in range(1, int(np.sqrt(n)) + 1) if n % d == 0)
    return rows, n // rows


def image_shape_of(X, image_shape=None):
    """(C, H, W) of the images in X: image_shape if given ((H, W) means one channel), else told
    from X: (N, C, H, W), (N, H, W) grey, or flat rows (N, D) of a known data set's size."""
    if image_shape is not None:
        shape = tuple(int(n) for n in image_shape)
        return (1, *shape) if len(shape) == 2 else shape
    X = np.asarray(X)
    if X.ndim == 4:
        return X.shape[1:]
    if X.ndim == 3:
        return (1, *X.shape[1:])
    known = [spec["image_shape"] for spec in DATASETS.values() if math.prod(spec["image_shape"]) == X.shape[-1]]
    if X.ndim == 2 and known:
        return known[0]
    raise ValueError(_("cannot tell the image shape of inputs of shape {shape}; pass image_shape=(C, H, W)")
                     .format(shape=X.shape))


def as_images(X, image_shape=None):
    """Inputs of any layout -> images for imshow: (N, H, W) if grey, (N, H, W, 3) if colour,
    (N, H, C * W) with the channels side by side for any other number of channels.

    X: flat rows (N, C * H * W), (N, H, W) or (N, C, H, W); image_shape: (C, H, W) or None (see image_shape_of).
    """
    C, H, W = image_shape_of(X, image_shape)
    images = np.asarray(X).reshape(len(X), C, H, W)
    if C == 1:
        return images[:, 0]
    return images.transpose(0, 2, 3, 1) if C == 3 else images.transpose(0, 2, 1, 3).reshape(len(X), H, C * W)


def show_image(ax, image, **kwargs):
    """Draw one image from as_images on ax: grey from black to white (uint8: 0 to 255, else the image's
    min to max); colour as RGB, rescaled to [0, 1] unless it is uint8 (standardised pixels have no
    fixed range). Ticks off; returns imshow's image."""
    ax.set_xticks([]), ax.set_yticks([])
    if image.ndim == 2:
        if image.dtype == np.uint8:  # the stored range, not the image's own: a faint image stays faint
            kwargs = {"vmin": 0, "vmax": 255, **kwargs}
        return ax.imshow(image, cmap="gray", **kwargs)
    if image.dtype != np.uint8:
        image = np.asarray(image, dtype=np.float32)
        image = (image - image.min()) / max(float(image.max() - image.min()), 1e-8)
    return ax.imshow(image, **kwargs)


def plot_samples(X, y, per_class=8, rng=None, class_names=CLASS_NAMES, image_shape=None):
    """A grid of random images: one row per class, the class name on the left. X: images or flat rows."""
    rng = np.random.default_rng(rng)
    images = as_images(X, image_shape)
    fig, axes = plt.subplots(len(class_names), per_class, figsize=(per_class * 0.9, len(class_names) * 0.95))
    for k, row in enumerate(axes):
        for ax, i in zip(row, rng.choice(np.flatnonzero(y == k), per_class, replace=False)):
            show_image(ax, images[i])
        row[0].set_ylabel(label(class_names[k]), rotation=0, ha="right", va="center")
    note = "" if images.ndim == 4 else label(GREY_NOTE) if images.dtype == np.uint8 else \
        label("grey scale: black = each image's lowest value, white = its highest")
    note = "\n" + label("({note})").format(note=note) if note else ""
    fig.suptitle(label("{per_class} random training images per class").format(per_class=per_class) + note)
    return fig


def plot_class_balance(splits, class_names=CLASS_NAMES):
    """Bars of the number of images per class for each split. splits: {name: labels (N,)}."""
    fig, ax = plt.subplots(figsize=(10, 3.5), layout="constrained")
    width = 0.8 / len(splits)
    for j, (name, y) in enumerate(splits.items()):
        counts = np.bincount(y, minlength=len(class_names))
        ax.bar(np.arange(len(class_names)) + (j - (len(splits) - 1) / 2) * width, counts, width,
               label=label(name))
    ax.set_xticks(range(len(class_names)), labels(class_names), rotation=30)
    ax.set_ylabel(label("images"))
    ax.set_title(label("Images per class"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title=label("split"))  # beside the bars, never over one
    return fig


def _sample(X, max_images, rng):
    """X itself if it has at most max_images rows, else a random max_images of them (rows kept in order)."""
    if len(X) <= max_images:
        return X
    return X[np.sort(rng.choice(len(X), max_images, replace=False))]


def plot_pixel_histograms(raw, standardized, max_images=10000, rng=0):
    """Histograms of all pixel values before (uint8, 0..255) and after standardisation.

    raw, standardized: images or flat rows, any number each; each array with more than max_images
    rows is drawn from a random sample of max_images of them (rng: a seed or np.random.Generator).
    The panel titles say how many images each histogram counts, and whether they were sampled.
    """
    rng = np.random.default_rng(rng)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
    for ax, X, title, xlabel in ((axes[0], raw, label("Raw pixels"), label("intensity (0..255)")),
                                 (axes[1], standardized, label("Standardised pixels"),
                                  label("(x / 255 - mean) / std"))):
        shown = _sample(X, max_images, rng)
        ax.hist(np.asarray(shown, dtype=np.float32).ravel(), bins=64, log=True)
        which = label("{n} images").format(n=f"{len(X):,}") if len(shown) == len(X) else \
            label("a random {shown} of {n} images").format(shown=f"{len(shown):,}", n=f"{len(X):,}")
        ax.set_title(label("{title} ({which})").format(title=title, which=which))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label("pixels (log scale)"))
    return fig


def plot_class_means(X, y, class_names=CLASS_NAMES, image_shape=None):
    """The mean image of each class, on one colour scale. X: images or flat rows, any dtype.

    Grey images on a colour map with its colour bar; colour images as the mean RGB image.
    """
    images = as_images(X, image_shape).astype(np.float32)
    means = np.stack([images[y == k].mean(axis=0) for k in range(len(class_names))])
    cols = min(len(class_names), 5)
    fig, axes = plt.subplots(math.ceil(len(class_names) / cols), cols, figsize=(11, 5), squeeze=False,
                             layout="constrained")
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(class_names):
            continue
        if means.ndim == 3:
            im = ax.imshow(means[k], cmap="magma", vmin=means.min(), vmax=means.max())
        else:  # one scale for all classes, so the colours compare
            ax.imshow((means[k] - means.min()) / max(float(means.max() - means.min()), 1e-8))
        ax.set_title(label(class_names[k]))
    if means.ndim == 3:
        fig.colorbar(im, ax=axes, shrink=0.8, label=label("mean pixel value"))
    note = label("dark: low pixel values, bright: high, as in the samples")
    fig.suptitle(label("Mean image per class") + (label(" ({note})").format(note=note) if means.ndim == 3 else ""))
    return fig
