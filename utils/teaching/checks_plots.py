"""Checks for the figure exercises of notebook 06: the learning curves and the first layer's weights as images.

A figure cannot be compared with a reference array, so the check reads the Figure the student's
function returns: its axes, their labels, the data of every line and every image, and names
what is missing (a curve, a label, a legend, points) or wrong (an epoch off by one, an image
made of the wrong weights). The figures drawn for the check are closed, not shown.
"""
import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np

from utils.plumbing.language import _
from utils.teaching.checks_common import call, checker, correct

HISTORY = [{"epoch": e, "train_loss": tl, "val_loss": vl, "val_acc": va} for e, tl, vl, va in zip(
    range(1, 6), (1.2, 0.7, 0.55, 0.45, 0.4), (0.9, 0.65, 0.6, 0.58, 0.61), (0.62, 0.74, 0.78, 0.8, 0.79))]


def _figure(what, result):
    fig = result[0] if isinstance(result, tuple) and result else result
    if isinstance(fig, plt.Axes):
        fig = fig.figure
    if not isinstance(fig, matplotlib.figure.Figure):
        raise AssertionError(_("{what} returned {type}; expected the Figure. Likely cause: a missing `return fig` "
                               "(fig, axes = plt.subplots(...) makes it)").format(what=what,
                                                                                 type=type(result).__name__))
    return fig


def _series(lines, values):
    """The line whose y data are values (in order), or None."""
    for line in lines:
        y = np.asarray(line.get_ydata(), dtype=np.float64)
        if y.shape == (len(values),) and np.allclose(y, values):
            return line
    return None


@checker
def check_curves(fn):
    """Check fn(history) -> Figure: training and validation loss per epoch, and validation accuracy per epoch.

    history: a list of {"epoch", "train_loss", "val_loss", "val_acc"}, as fit returns. Every
    curve must be a line of one point per epoch, plotted against the epoch numbers; every axes
    with a curve needs x and y labels, and a legend when it holds two curves.
    """
    before = set(plt.get_fignums())
    try:
        fig = _figure("plot_curves", call("plot_curves", fn, [dict(row) for row in HISTORY]))
        axes = [ax for ax in fig.axes if ax.get_lines()]
        lines = [line for ax in axes for line in ax.get_lines()]
        epochs = [row["epoch"] for row in HISTORY]
        found = {}
        for key, name in (("train_loss", _("training loss")), ("val_loss", _("validation loss")),
                          ("val_acc", _("validation accuracy"))):
            values = [row[key] for row in HISTORY]
            line = _series(lines, values)
            if line is None:
                short = [line for line in lines if len(line.get_ydata()) == len(values) - 1]
                cause = (_("a line has {points} points for {epochs} epochs: an epoch is left out "
                           "(a range off by one?)").format(points=len(values) - 1, epochs=len(values)) if short else
                         _("no line shows the {name} ({values}): plot [row['{key}'] for row in history]"
                           ).format(name=name, values=values, key=key))
                raise AssertionError(_("plot_curves: the {name} curve is missing. Likely cause: {cause}").format(
                    name=name, cause=cause))
            x = np.asarray(line.get_xdata(), dtype=np.float64)
            if not np.allclose(x, epochs):
                cause = (_("the x values run 0..4: without x, plot numbers the points from 0; plot against the "
                           "epochs, ax.plot(epochs, values)") if np.allclose(x, np.arange(len(epochs)))
                         else _("the x values {x} are not the epochs {epochs}").format(x=x.tolist(), epochs=epochs))
                raise AssertionError(_("plot_curves: the {name} curve is wrong. Likely cause: {cause}").format(
                    name=name, cause=cause))
            found[key] = line
        for ax in axes:
            shown = [key for key, line in found.items() if line.axes is ax]
            for label, text in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
                if not text.strip():
                    raise AssertionError(_("plot_curves: the axes with {curves} has no {axis} label. Likely cause: "
                                           "ax.set_{axis}label(...) is missing ({text})").format(
                        curves=_(" and ").join(shown) or _("a curve"), axis=label,
                        text=_("epoch") if label == "x" else _("loss, or accuracy")))
            if len(shown) > 1 and ax.get_legend() is None:
                raise AssertionError(_("plot_curves: the axes holds {n} curves ({curves}) and no legend. Likely "
                                       "cause: give each line a label= and call ax.legend()").format(
                    n=len(shown), curves=", ".join(shown)))
        if found["val_acc"].axes is found["val_loss"].axes:
            raise AssertionError(_("plot_curves: the accuracy shares an axes with the losses. Likely cause: one "
                                   "axes for both; accuracy (0..1) and loss (no upper bound) need their own axes, "
                                   "fig, (ax_loss, ax_acc) = plt.subplots(1, 2)"))
        correct(0.0, _("{curves} curves of {points} points against the epochs, on {axes} labelled axes").format(
            curves=len(found), points=len(epochs), axes=len(axes)))
    finally:
        for num in set(plt.get_fignums()) - before:
            plt.close(num)


def _same_picture(image, unit):
    """True when image shows unit's weights, up to the brightness scaling imshow may apply (a + b * w, b > 0)."""
    a, b = np.ravel(image).astype(np.float64), np.ravel(unit)
    if a.shape != b.shape or np.std(a) == 0:
        return False
    return bool(np.corrcoef(a, b)[0, 1] > 1 - 1e-9)


@checker
def check_weight_images(fn, count=16, seed=0):
    """Check fn(W, count) -> Figure: the weights into each of the first count hidden units, as 28 x 28 images.

    W: (784, M), the first Linear layer's weights; unit j's weights are the column W[:, j].
    """
    W = np.random.default_rng(seed).standard_normal((784, 20))
    before = set(plt.get_fignums())
    try:
        fig = _figure("plot_first_layer", call("plot_first_layer", fn, W.copy(), count))
        images = [im for ax in fig.axes for im in ax.get_images()]
        if len(images) != count:
            raise AssertionError(_("plot_first_layer drew {n} images, expected {count}, one per hidden unit. Likely "
                                   "cause: {cause}").format(
                n=len(images), count=count, cause=_("ax.imshow is missing") if not images else
                _("the loop draws another number of units than count")))
        for j, image in enumerate(images):
            data = np.asarray(image.get_array())
            if data.shape != (28, 28):
                raise AssertionError(_("plot_first_layer: image {j} has shape {shape}, expected (28, 28). Likely "
                                       "cause: unit j's 784 weights are W[:, j]; show W[:, j].reshape(28, 28)"
                                       ).format(j=j, shape=data.shape))
            if _same_picture(data, W[:, j].reshape(28, 28)):
                continue
            if _same_picture(data, W.reshape(-1)[j * 784:(j + 1) * 784].reshape(28, 28)):
                cause = _("W.reshape(M, 28, 28) cuts W row by row and mixes the units: unit j's weights are the "
                          "column W[:, j]")
            elif _same_picture(data.T, W[:, j].reshape(28, 28)):
                cause = _("the image is transposed: W[:, j].reshape(28, 28) is already row by row")
            else:
                cause = _("image {j} should show unit {j}'s weights, W[:, {j}].reshape(28, 28), in order").format(j=j)
            raise AssertionError(_("plot_first_layer: image {j} is wrong. Likely cause: {cause}").format(
                j=j, cause=cause))
        correct(0.0, _("{count} images of 28 x 28, one per hidden unit, in order").format(count=count))
    finally:
        for num in set(plt.get_fignums()) - before:
            plt.close(num)
