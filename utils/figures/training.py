"""Figures of training: the curves (drawn once, or live while training runs) and its diagnostics.

The other figures sit by subject: utils.figures.data (the data and the image helpers),
utils.figures.model (weights, templates, activations, filters and feature maps),
utils.figures.errors (the per-class table, confusion matrix and predictions) and
utils.search.results (the search's heatmaps and curves).
Every function draws one figure and returns it (the notebook ends the cell with plt.show()).
save_figure writes a figure to static_dir() for the README; in a notebook it also shows that PNG
and closes the figure, so the plt.show() after it has nothing left to draw. Image shapes and
class names come from the data (image_shape, class_names arguments), so CIFAR-10's figures are
labelled too.
"""
import io
import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display
from matplotlib.colors import LogNorm
from matplotlib.ticker import MaxNLocator, PercentFormatter

from utils.plumbing import paths
from utils.plumbing.files import atomic_write
from utils.plumbing.fonts import label


def save_figure(fig, name, folder=None, dpi=100):
    """Write fig as PNG to folder (default static_dir(), read now)/name, atomically; returns the path.

    In a notebook (matplotlib's inline backend) the figure is then shown from that same PNG and
    closed, so the plt.show() after it has nothing left to draw: the figure is rendered once,
    not twice (a rendering costs 0.1 to 0.5 s). Elsewhere the figure stays open.
    """
    path = (paths.static_dir() if folder is None else Path(folder)) / name
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi, bbox_inches="tight")
    with atomic_write(path) as f:
        f.write(png.getvalue())
    if "inline" in matplotlib.get_backend():
        display(Image(png.getvalue()))
        plt.close(fig)
    return path


# ---- training (notebook 03)

# The loss train() records as train_loss and val_loss is the data loss: the L2 term of the
# objective is left out (it is in train_total_loss), and a reader must not mistake one for the other.
DATA_LOSS_LABEL = "training data loss (cross-entropy, without the L2 term)"
TOTAL_LOSS_LABEL = "training objective (cross-entropy + L2 term)"


def integer_epochs(ax, last_epoch):
    """Whole epochs on the x-axis, from 0.5 to last_epoch + 0.5: a 1-epoch run shows one tick, 1."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # else one integer in range falls back
    ax.set_xlim(0.5, max(int(last_epoch), 1) + 0.5)


def plot_history(history, axes=None, num_epochs=None):
    """Loss and accuracy per epoch, training and validation. history: the DataFrame train() returns.

    The loss panel draws the data loss (cross-entropy) that train() records as train_loss and
    val_loss; if the history has train_total_loss (+ the L2 term) and it differs, that training
    objective is drawn dashed. The best epoch (by validation accuracy) is marked on both panels.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    fig = axes[0].figure
    epochs = history["epoch"]
    best = history["val_acc"].idxmax()
    best_epoch = epochs[best]
    for ax, metric in ((axes[0], "loss"), (axes[1], "acc")):
        ax.clear()
        ax.plot(epochs, history[f"train_{metric}"], "o-", ms=3, color="C0",
                label=label(DATA_LOSS_LABEL) if metric == "loss" else label("training"))
        ax.plot(epochs, history[f"val_{metric}"], "o-", ms=3, color="C1",
                label=label("validation (cross-entropy)") if metric == "loss" else label("validation"))
        ax.set_xlabel(label("epoch"))
        integer_epochs(ax, num_epochs or epochs.max())
        ax.grid(alpha=0.3)
    with_l2 = "train_total_loss" in history and bool((history["train_total_loss"] != history["train_loss"]).any())
    if with_l2:
        axes[0].plot(epochs, history["train_total_loss"], "x--", ms=4, color="C0", lw=1, label=label(TOTAL_LOSS_LABEL))
    axes[0].axvline(best_epoch, color="gray", ls=":",
                    label=label("best epoch (validation accuracy): {epoch}").format(epoch=best_epoch))
    axes[1].axvline(best_epoch, color="gray", ls=":",
                    label=label("best: epoch {epoch}, {acc:.4f}").format(epoch=best_epoch,
                                                                         acc=history["val_acc"][best]))
    axes[0].set_ylabel(label("loss"))
    axes[1].set_ylabel(label("accuracy"))
    axes[0].legend(fontsize=8)
    axes[1].legend(loc="lower right", fontsize=8)
    axes[0].set_title(label("Loss: cross-entropy") + (label(" (dashed: + the L2 term)") if with_l2
                                                      else label(", without the L2 term")))
    axes[1].set_title(label("Accuracy (training: running mean over the epoch)"))
    return fig


class LiveCurves:
    """A train() callback that redraws the loss and accuracy curves after every epoch.

    It updates one display in place (IPython's display handle), so the curves grow in the
    notebook while training runs, and the last image stays in the saved notebook. Sending
    the picture means rendering it, about 0.2 s, so it is sent at most every min_seconds
    and after epoch num_epochs. Used as a context manager (``with LiveCurves(n) as curves:
    train(..., callback=curves)``), it also sends the final curves of a run that ended
    earlier (early stopping, an interrupt) or whose num_epochs it was not told.
    """

    def __init__(self, num_epochs=None, min_seconds=5.0):
        self.num_epochs, self.min_seconds = num_epochs, min_seconds
        self.fig, self.axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
        plt.close(self.fig)  # shown through the handle only, not again at the end of the cell
        self.handle = display(self.fig, display_id=True)  # None outside IPython: then only fig is updated
        self.sent_at, self.unsent = None, False

    def __call__(self, history, model=None):
        plot_history(history, self.axes, self.num_epochs)  # the figure itself is always current
        self.unsent = True
        last = self.num_epochs is not None and len(history) >= self.num_epochs
        if last or self.sent_at is None or time.monotonic() - self.sent_at >= self.min_seconds:
            self.send()

    def send(self):
        """Show the curves as they are now, if they changed since they were last shown."""
        if self.unsent and self.handle is not None:
            self.handle.update(self.fig)
        self.sent_at, self.unsent = time.monotonic(), False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.send()


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
        ax.set_xlabel(label("weight value"))
        ax.set_ylabel(label("epoch"))
        ax.set_title(label("layer {i}: W").format(i=i))
    fig.colorbar(im, ax=axes, label=label("share of weights"))
    fig.suptitle(label("Weight distribution per epoch (epoch 0 = initialisation)"))
    return fig


def plot_training_signals(monitor):
    """Update-to-weight ratio and the share of dead and saturated units per epoch, per layer.

    monitor: a utils.teaching.doctor.TrainingMonitor (its X_probe gives the probe's size).
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
    for i, group in monitor.ratios.groupby("layer"):
        axes[0].semilogy(group["epoch"], group["ratio"], "o-", ms=3, label=label("layer {i}").format(i=i))
    axes[0].set_title(label("Update-to-weight ratio") + r" $\|W_e - W_{e-1}\| / \|W_{e-1}\|$")
    axes[0].set_ylabel(label("ratio per epoch (log scale)"))
    stats = monitor.activations
    probe = getattr(monitor, "X_probe", None)
    on = label("the {n}-image probe").format(n=f"{len(probe):,}") if probe is not None else label("the probe images")
    for ax, column, title, floor in (
            (axes[1], "dead", label("Dead units: flat on every image of {on}\n(dead on this probe; a unit can revive)")
             .format(on=on), 1.0),
            (axes[2], "saturated", label("Flat activations (saturated or zero) on {on}").format(on=on), 5.0)):
        for i, group in stats.groupby("layer"):
            ax.plot(group["epoch"], 100 * group[column], "o-", ms=3,
                    label=label("layer {i} ({kind})").format(i=i, kind=group["kind"].iloc[0]))
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(label("% of units dead") if column == "dead" else label("% of activations flat"))
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=100))
        # Scaled to the data, with a floor: a line of 0.4 % must not sit on the axis of a 0-5 % scale,
        # nor should 0.1 % fill the panel (the floor; the tick labels say how small it is).
        top = 1.1 * 100 * float(stats[column].max()) if len(stats) else 0.0
        ax.set_ylim(0, max(floor, top))
    for ax in axes:
        ax.set_xlabel(label("epoch"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.legend()
    return fig
