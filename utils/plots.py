"""Figures for the notebooks: data, training curves, diagnostics, weights, activations, errors.

Every function draws one figure and returns it (the notebook ends the cell with
plt.show()); save_figure writes a figure to STATIC_DIR for the README.
"""
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from utils.checkpoint import atomic_write
from utils.data import CLASS_NAMES
from utils.paths import STATIC_DIR


def save_figure(fig, name, folder=None, dpi=100):
    """Write fig as PNG to folder (default STATIC_DIR)/name, atomically; returns the path."""
    path = (STATIC_DIR if folder is None else folder) / name
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    return path


def grid_shape(n):
    """(rows, cols) with rows * cols == n and rows <= cols, as square as possible: 784 -> (28, 28), 10 -> (2, 5)."""
    rows = max(d for d in range(1, int(np.sqrt(n)) + 1) if n % d == 0)
    return rows, n // rows


def as_images(X):
    """Flat (N, 784) or (N, 1, 28, 28) inputs -> (N, 28, 28) for imshow."""
    return np.asarray(X).reshape(len(X), 28, 28)


# ---- data (notebook 01)

def plot_samples(X, y, per_class=8, rng=None, class_names=CLASS_NAMES):
    """A grid of random images: one row per class, the class name on the left. X: (N, 28, 28) or flat."""
    rng = np.random.default_rng(rng)
    images = as_images(X)
    fig, axes = plt.subplots(len(class_names), per_class, figsize=(per_class * 0.9, len(class_names) * 0.95))
    for k, row in enumerate(axes):
        for ax, i in zip(row, rng.choice(np.flatnonzero(y == k), per_class, replace=False)):
            ax.imshow(images[i], cmap="gray_r")
            ax.set_xticks([]), ax.set_yticks([])
        row[0].set_ylabel(class_names[k], rotation=0, ha="right", va="center")
    fig.suptitle(f"{per_class} random training images per class")
    return fig


def plot_class_balance(splits, class_names=CLASS_NAMES):
    """Bars of the number of images per class for each split. splits: {name: labels (N,)}."""
    fig, ax = plt.subplots(figsize=(10, 3.5))
    width = 0.8 / len(splits)
    for j, (name, y) in enumerate(splits.items()):
        counts = np.bincount(y, minlength=len(class_names))
        ax.bar(np.arange(len(class_names)) + (j - (len(splits) - 1) / 2) * width, counts, width, label=name)
    ax.set_xticks(range(len(class_names)), class_names, rotation=30)
    ax.set_ylabel("images")
    ax.set_title("Images per class")
    ax.legend()
    return fig


def plot_pixel_histograms(raw, standardized):
    """Histograms of all pixel values before (uint8, 0..255) and after standardisation."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for ax, X, title, xlabel in ((axes[0], raw, "Raw pixels", "intensity (0..255)"),
                                 (axes[1], standardized, "Standardised pixels", "(x / 255 - mean) / std")):
        ax.hist(np.asarray(X, dtype=np.float32).ravel(), bins=64, log=True)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("pixels (log scale)")
    return fig


def plot_class_means(X, y, class_names=CLASS_NAMES):
    """The mean image of each class, on one colour scale. X: (N, 28, 28) or flat, any dtype."""
    images = as_images(X).astype(np.float32)
    means = np.stack([images[y == k].mean(axis=0) for k in range(len(class_names))])
    fig, axes = plt.subplots(2, 5, figsize=(11, 5), layout="constrained")
    for k, ax in enumerate(axes.flat):
        im = ax.imshow(means[k], cmap="magma", vmin=means.min(), vmax=means.max())
        ax.set_title(class_names[k])
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.8, label="mean pixel value")
    fig.suptitle("Mean image per class")
    return fig


# ---- training (notebook 03)

def plot_history(history, axes=None, num_epochs=None):
    """Loss and accuracy per epoch, training and validation. history: the DataFrame train() returns."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    fig = axes[0].figure
    for ax, metric, label in ((axes[0], "loss", "cross-entropy loss"), (axes[1], "acc", "accuracy")):
        ax.clear()
        ax.plot(history["epoch"], history[f"train_{metric}"], "o-", ms=3, label="training")
        ax.plot(history["epoch"], history[f"val_{metric}"], "o-", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if num_epochs:
            ax.set_xlim(0.5, num_epochs + 0.5)
    best = history["val_acc"].idxmax()
    axes[1].axvline(history["epoch"][best], color="gray", ls=":",
                    label=f"best: epoch {history['epoch'][best]}, {history['val_acc'][best]:.4f}")
    axes[0].legend()
    axes[1].legend(loc="lower right")
    axes[0].set_title("Loss")
    axes[1].set_title("Accuracy")
    return fig


class LiveCurves:
    """A train() callback that redraws the loss and accuracy curves after every epoch.

    It updates one display in place (IPython's display handle), so the curves grow in the
    notebook while training runs, and the last image stays in the saved notebook.
    """

    def __init__(self, num_epochs=None):
        from IPython.display import display
        self.num_epochs = num_epochs
        self.fig, self.axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
        plt.close(self.fig)  # shown through the handle only, not again at the end of the cell
        self.handle = display(self.fig, display_id=True)  # None outside IPython: then only fig is updated

    def __call__(self, history, model=None):
        plot_history(history, self.axes, self.num_epochs)
        if self.handle is not None:
            self.handle.update(self.fig)


def plot_weight_evolution(monitor, bins=61):
    """For each Linear layer, a heatmap of epoch x weight value: how its weight distribution moves.

    monitor: a utils.diagnostics.TrainingMonitor after training. Colour: share of weights, log scale.
    """
    from matplotlib.colors import LogNorm
    layers = list(monitor.samples)
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.8), layout="constrained")
    for ax, i in zip(np.atleast_1d(axes), layers):
        epochs, edges, counts = monitor.weight_histograms(i, bins)
        im = ax.pcolormesh(edges, np.append(epochs, epochs[-1] + 1) - 0.5, counts,
                           norm=LogNorm(vmin=1e-5, vmax=counts.max()), cmap="viridis")
        ax.set_xlabel("weight value")
        ax.set_ylabel("epoch")
        ax.set_title(f"layer {i}: W")
    fig.colorbar(im, ax=axes, label="share of weights")
    fig.suptitle("Weight distribution per epoch (epoch 0 = initialisation)")
    return fig


def plot_training_signals(monitor):
    """Update-to-weight ratio and the share of dead and saturated units per epoch, per layer."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
    for i, group in monitor.ratios.groupby("layer"):
        axes[0].semilogy(group["epoch"], group["ratio"], "o-", ms=3, label=f"layer {i}")
    axes[0].set_title(r"Update-to-weight ratio $\|W_e - W_{e-1}\| / \|W_{e-1}\|$")
    axes[0].set_ylabel("ratio per epoch (log scale)")
    stats = monitor.activations
    for ax, column, title in ((axes[1], "dead", "Dead units (flat on every probe image)"),
                              (axes[2], "saturated", "Flat activations (saturated or zero)")):
        for i, group in stats.groupby("layer"):
            ax.plot(group["epoch"], 100 * group[column], "o-", ms=3, label=f"layer {i} ({group['kind'].iloc[0]})")
        ax.set_title(title)
        ax.set_ylabel("% of units" if column == "dead" else "% of activations")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


# ---- testing (notebook 04)

def plot_confusion_matrix(y_true, y_pred, class_names=CLASS_NAMES):
    """Heatmap of the confusion matrix, each row normalised to the true class (numbers: counts)."""
    k = len(class_names)
    counts = np.bincount(np.asarray(y_true) * k + np.asarray(y_pred), minlength=k * k).reshape(k, k)
    share = counts / counts.sum(axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(9, 7.5))
    sns.heatmap(share, annot=counts, fmt="d", cmap="Blues", xticklabels=class_names, yticklabels=class_names,
                cbar_kws={"label": "share of the true class"}, ax=ax)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix on the test set (numbers: image counts)")
    return fig


def plot_predictions(X, y_true, proba, class_names=CLASS_NAMES, cols=4):
    """Each image with its true label and a bar chart of the predicted class probabilities.

    X: (n, 784) or (n, 28, 28); y_true: (n,); proba: (n, C). Green bar: the true class; red: a wrong top guess.
    """
    images, n = as_images(X), len(X)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(3.6 * cols, 1.9 * rows),
                             gridspec_kw={"width_ratios": [1, 1.2] * cols})
    axes = axes.reshape(rows, 2 * cols)
    for j in range(rows * cols):
        ax_img, ax_bar = axes[j // cols, 2 * (j % cols)], axes[j // cols, 2 * (j % cols) + 1]
        if j >= n:
            ax_img.axis("off"), ax_bar.axis("off")
            continue
        pred = int(proba[j].argmax())
        ax_img.imshow(images[j], cmap="gray_r")
        ax_img.set_xticks([]), ax_img.set_yticks([])
        ax_img.set_title(f"true: {class_names[y_true[j]]}\npred: {class_names[pred]} ({proba[j, pred]:.2f})", fontsize=8,
                         color="black" if pred == y_true[j] else "red")
        colors = ["tab:gray"] * len(class_names)
        if pred != y_true[j]:
            colors[pred] = "tab:red"
        colors[y_true[j]] = "tab:green"
        ax_bar.barh(range(len(class_names)), proba[j], color=colors)
        ax_bar.set_xlim(0, 1)
        ax_bar.invert_yaxis()
        ax_bar.set_yticks(range(len(class_names)), class_names, fontsize=6)
        ax_bar.tick_params(axis="x", labelsize=6)
        ax_bar.set_xlabel("probability", fontsize=7)
    fig.tight_layout()
    return fig


def plot_weight_heatmaps(model):
    """Every Linear layer's weight matrix W (in x out) as a heatmap, centred on 0."""
    from utils.diagnostics import linear_layers
    layers = linear_layers(model)
    fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 4), layout="constrained")
    for ax, (i, layer) in zip(np.atleast_1d(axes), layers):
        W = layer.params["W"]
        # The scale ends at the 99.5th percentile of |W|: a few extreme weights would wash out the rest.
        limit = float(np.quantile(np.abs(W), 0.995))
        # Large matrices have more cells than the panel has pixels: averaged (antialiased), not sampled.
        im = ax.imshow(W, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                       interpolation="antialiased" if min(W.shape) > 100 else "nearest")
        ax.set_title(f"layer {i}: W {W.shape[0]}x{W.shape[1]}")
        ax.set_xlabel("output unit")
        ax.set_ylabel("input unit")
        fig.colorbar(im, ax=ax, shrink=0.8, extend="both")
    fig.suptitle("Weights of every Linear layer")
    return fig


def plot_first_layer_templates(model, n=32, cols=8):
    """The first n columns of the first layer's W, each a 28x28 template of what the unit looks for."""
    W = next(layer for layer in model.layers if hasattr(layer, "params") and "W" in layer.params).params["W"]
    n = min(n, W.shape[1])
    fig, axes = plt.subplots(int(np.ceil(n / cols)), cols, figsize=(1.5 * cols, 1.6 * np.ceil(n / cols)),
                             layout="constrained")
    limit = np.abs(W[:, :n]).max()
    for j, ax in enumerate(axes.flat):
        ax.axis("off")
        if j < n:
            im = ax.imshow(W[:, j].reshape(28, 28), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"unit {j}", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.6, label="weight (red: excites, blue: inhibits)")
    fig.suptitle(f"First-layer weights as 28x28 templates (units 0-{n - 1})")
    return fig


def plot_weight_histograms(model, bins=100):
    """A histogram of the weights and one of the biases of every Linear layer."""
    from utils.diagnostics import linear_layers
    layers = linear_layers(model)
    fig, axes = plt.subplots(2, len(layers), figsize=(4.2 * len(layers), 5.5), layout="constrained")
    for col, (i, layer) in enumerate(layers):
        for row, key in enumerate(("W", "b")):
            values = layer.params[key].ravel()
            ax = axes[row, col]
            ax.hist(values, bins=bins if key == "W" else 30, color="tab:blue" if key == "W" else "tab:orange")
            ax.set_title(f"layer {i}: {key}  (mean {values.mean():+.3f}, std {values.std():.3f})", fontsize=9)
            ax.set_xlabel("value")
            ax.set_ylabel("count")
    fig.suptitle("Weight and bias distributions")
    return fig


def plot_activations(model, X, y=None, class_names=CLASS_NAMES):
    """Every layer's output for each input, reshaped to a near-square 2-D heatmap.

    X: (n, 784) inputs (already standardised); y: optional true labels for the row titles.
    One row per input: the image, then each layer's output (Linear: pre-activations, then the
    activation's output, ...). Runs the model in eval mode (Dropout layers, then the identity,
    are left out) and reads each layer's cached .out.
    """
    from module import Dropout
    layers = [(i, layer) for i, layer in enumerate(model.layers) if not isinstance(layer, Dropout)]
    was_training = model.training
    model.eval()  # Dropout is then the identity, so it is left out of the picture
    outs = []
    for x in X:
        model.forward(x[None])
        outs.append([layer.out[0] for _, layer in layers])
    if was_training:
        model.train()
    names = [f"{i}: {type(layer).__name__} ({layer.out.shape[1]})" for i, layer in layers]
    cols = len(layers) + 1
    fig, axes = plt.subplots(len(X), cols, figsize=(2.1 * cols, 2.2 * len(X)), squeeze=False, layout="constrained")
    for r, (x, row_outs) in enumerate(zip(X, outs)):
        axes[r, 0].imshow(x.reshape(28, 28), cmap="gray_r")
        pred = int(row_outs[-1].argmax())
        axes[r, 0].set_title((f"true: {class_names[y[r]]}\n" if y is not None else "") + f"pred: {class_names[pred]}",
                             fontsize=8)
        for c, out in enumerate(row_outs, start=1):
            limit = max(np.abs(out).max(), 1e-8)
            ax = axes[r, c]
            # Activations >= 0 (ReLU, sigmoid) on a sequential map; signed ones centred on 0.
            signed = out.min() < 0
            im = ax.imshow(out.reshape(grid_shape(out.size)), cmap="RdBu_r" if signed else "viridis",
                           vmin=-limit if signed else 0, vmax=limit, aspect="auto" if out.size < 20 else "equal")
            fig.colorbar(im, ax=ax, shrink=0.7)
            if r == 0:
                ax.set_title(names[c - 1], fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("Activations of every layer, each reshaped to 2-D")
    return fig


# ---- hyperparameter search (notebook 02): the plots live with the search's results

from utils.search_results import plot_search_curves, plot_search_heatmaps  # noqa: E402,F401


# ---- convolutional networks (notebook 05)

def _display(x):
    """One input image (C, H, W), standardised or not -> (array, cmap) for imshow: grey, or RGB in [0, 1]."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[0] == 1:
        return x[0], "gray_r"
    x = x.transpose(1, 2, 0)[..., :3]
    return (x - x.min()) / max(x.max() - x.min(), 1e-8), None


def plot_image_grid(images, titles=None, cols=8, centred=True, suptitle=None, size=1.3, colorbar=True):
    """Small 2-D maps (n, H, W) in a grid on one colour scale: filters, feature maps, weight templates.

    centred: a diverging scale symmetric about 0 (red positive, blue negative), for signed values;
    otherwise viridis from min to max.
    """
    images = np.asarray(images, dtype=np.float32)
    n = len(images)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, (size + 0.15) * rows), squeeze=False,
                             layout="constrained")
    limit = max(float(np.abs(images).max()), 1e-8)
    scale = dict(cmap="RdBu_r", vmin=-limit, vmax=limit) if centred else \
        dict(cmap="viridis", vmin=float(images.min()), vmax=float(images.max()))
    for j, ax in enumerate(axes.flat):
        ax.axis("off")
        if j < n:
            im = ax.imshow(images[j], interpolation="nearest", **scale)
            if titles is not None:
                ax.set_title(titles[j], fontsize=8)
    if colorbar:
        fig.colorbar(im, ax=axes, shrink=0.8)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def plot_filters(W, suptitle=None):
    """A conv layer's filters W (F, C, k, k): one k x k map per filter and input channel.

    With 3 input channels each filter is also drawn as one colour image (its RGB weights
    rescaled to [0, 1]), the colour pattern it responds to most.
    """
    F, C, k, _ = W.shape
    suptitle = suptitle or f"{F} filters of {C} x {k} x {k} weights"
    if C != 3:
        return plot_image_grid(W.reshape(F * C, k, k), [f"filter {f}" + (f", ch {c}" if C > 1 else "")
                                                       for f in range(F) for c in range(C)],
                               cols=C if C > 1 else min(F, 8), suptitle=suptitle)
    fig, axes = plt.subplots(1, F, figsize=(1.3 * F, 1.6), squeeze=False, layout="constrained")
    for f, ax in enumerate(axes[0]):
        ax.imshow(_display(W[f])[0], interpolation="nearest")
        ax.set_title(f"filter {f}", fontsize=8)
        ax.axis("off")
    fig.suptitle(suptitle)
    return fig


def plot_feature_maps(model, X, layer, y=None, class_names=CLASS_NAMES, max_maps=16):
    """For each image in X (n, C, H, W): the image, then the output channels of model.layers[layer].

    Runs the model in eval mode and reads the layer's cached .out (n, F, Ho, Wo); each row has
    its own colour scale, centred on 0 (red: the filter's pattern is present, blue: its opposite).
    """
    was_training = model.training
    model.eval()
    logits = model.forward(X)
    maps = model.layers[layer].out[:, :max_maps]
    if was_training:
        model.train()
    n, F = maps.shape[:2]
    fig, axes = plt.subplots(n, F + 1, figsize=(1.05 * (F + 1), 1.2 * n + 0.5), squeeze=False,
                             layout="constrained")
    for r in range(n):
        image, cmap = _display(X[r])
        axes[r, 0].imshow(image, cmap=cmap)
        title = [class_names[y[r]]] if y is not None else []
        if logits.ndim == 2:  # a classifier, not just a stack of conv layers
            title.append(f"pred: {class_names[int(logits[r].argmax())]}")
        axes[r, 0].set_title("\n".join(title), fontsize=7)
        limit = max(float(np.abs(maps[r]).max()), 1e-8)
        for f in range(F):
            axes[r, f + 1].imshow(maps[r, f], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
            if r == 0:
                axes[r, f + 1].set_title(f"map {f}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    name = f"{layer}: {type(model.layers[layer]).__name__}"
    fig.suptitle(f"Feature maps of layer {name}, {F} of shape {maps.shape[2]}x{maps.shape[3]}")
    return fig


def plot_class_errors(results, class_names=CLASS_NAMES):
    """Bars of the error rate per true class, one colour per model. results: {name: (y_true, y_pred)}."""
    fig, ax = plt.subplots(figsize=(10, 3.8), layout="constrained")
    width = 0.8 / len(results)
    for j, (name, (y_true, y_pred)) in enumerate(results.items()):
        y_true = np.asarray(y_true)
        wrong = np.bincount(y_true[np.asarray(y_pred) != y_true], minlength=len(class_names))
        rate = wrong / np.bincount(y_true, minlength=len(class_names))
        ax.bar(np.arange(len(class_names)) + (j - (len(results) - 1) / 2) * width, 100 * rate, width,
               label=f"{name} ({100 * wrong.sum() / len(y_true):.1f}% overall)")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_ylabel("% of the class misclassified")
    ax.set_title("Test errors per true class")
    ax.legend()
    return fig
