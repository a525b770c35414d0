"""Figures of training: the curves (drawn once, or live while training runs) and its diagnostics.

The other figures sit by subject: utils.figures.data (the data and the image helpers),
utils.figures.model (weights, templates, activations, filters and feature maps),
utils.figures.errors (the per-class table, confusion matrix and predictions) and
utils.search.results (the search's heatmaps and curves).
Every function draws one figure and returns it (the notebook ends the cell with plt.show());
save_figure writes a figure to static_dir() for the README. Image shapes and class names come
from the data (image_shape, class_names arguments), so CIFAR-10's figures are labelled too.
"""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from matplotlib.colors import LogNorm

from utils.plumbing import paths
from utils.plumbing.files import atomic_write


def save_figure(fig, name, folder=None, dpi=100):
    """Write fig as PNG to folder (default static_dir(), read now)/name, atomically; returns the path."""
    path = (paths.static_dir() if folder is None else Path(folder)) / name
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    return path


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

    monitor: a utils.teaching.doctor.TrainingMonitor after training. Colour: share of weights, log scale.
    """
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
        # From 0 to at least 5%: an automatic scale would make one flickering unit in 500 look dramatic.
        ax.set_ylim(0, max(5.0, 1.1 * 100 * float(stats[column].max()) if len(stats) else 5.0))
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    return fig

