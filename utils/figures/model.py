"""Figures of a trained model: weights, first-layer templates, activations, conv filters and feature maps.

Shapes come from the model and the data (image_shape, e.g. data["image_shape"]), never from a
constant, so the same figures draw Fashion-MNIST's grey 28x28 images and CIFAR-10's colour 32x32 ones.
"""
import matplotlib.pyplot as plt
import numpy as np

from module import Dropout
from utils.core.datasets import CLASS_NAMES
from utils.core.models import ACTIVATIONS, evaluating, linear_layers
from utils.figures.data import as_images, grid_shape, image_shape_of, show_image
from utils.plumbing.fonts import label, labels

ACTIVATION_TYPES = tuple(ACTIVATIONS.values())
# Inputs are standardised with one mean and std over all training pixels, so a weight's sign says what
# a pixel does relative to that mean: a background pixel is below it (negative), and a red weight on it
# lowers the output.
TEMPLATE_NOTE = ("red: the unit's output rises when this pixel is brighter than the training pixels' mean, "
                 "blue: when it is darker")
MAX_BARS = 32  # a bias with at most this many values is drawn value by value, not as a histogram


def _pixels(fig, ax):
    """(height, width) of ax in pixels of the saved figure (after the layout is done)."""
    fig.draw_without_rendering()
    box = ax.get_window_extent()
    return int(box.height), int(box.width)


def plot_weight_heatmaps(model, class_names=None):
    """Every Linear layer's weight matrix W (in x out) as a heatmap, centred on 0.

    The last layer's output units are labelled with class_names (if given and there are as many;
    there is no default, so another data set's figure never carries Fashion-MNIST's names). A matrix
    with more rows or columns than its panel has pixels is averaged down to fit: the panel's
    title says so, since single rows cannot be told apart then.
    """
    layers = linear_layers(model)
    fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 4), layout="constrained")
    for ax, (i, layer) in zip(np.atleast_1d(axes), layers):
        W = layer.params["W"]
        # The scale ends at the 99.5th percentile of |W|: a few extreme weights would wash out the rest.
        limit = float(np.quantile(np.abs(W), 0.995))
        # Large matrices have more cells than the panel has pixels: averaged (antialiased), not sampled.
        im = ax.imshow(W, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                       interpolation="antialiased" if min(W.shape) > 100 else "nearest")
        ax.set_title(label("layer {i}: W {rows}x{cols}").format(i=i, rows=W.shape[0], cols=W.shape[1]))
        ax.set_ylabel(label("input unit"))
        if class_names is not None and i == layers[-1][0] and W.shape[1] == len(class_names):
            ax.set_xticks(range(len(class_names)), labels(class_names), rotation=90, fontsize=7)
            ax.set_xlabel(label("output unit (class)"))
        else:
            ax.set_xlabel(label("output unit"))
        fig.colorbar(im, ax=ax, shrink=0.8, extend="both", label=label("weight"))
    for ax, (i, layer) in zip(np.atleast_1d(axes), layers):
        rows, cols = layer.params["W"].shape
        height, width = _pixels(fig, ax)
        squeezed = [what.format(n=n, px=px) for n, what, px in
                    ((rows, label("{n} rows on {px} px"), height), (cols, label("{n} columns on {px} px"), width))
                    if n > px]
        if squeezed:  # more cells than pixels: neighbours are averaged, single rows cannot be told apart
            ax.set_title(label("layer {i}: W {rows}x{cols}\ndownsampled: {squeezed}").format(
                i=i, rows=rows, cols=cols, squeezed=label(", ").join(squeezed)), fontsize=8)
    fig.suptitle(label("Weights of every Linear layer"))
    return fig


def plot_first_layer_templates(model, n=32, cols=8, image_shape=None):
    """The first n columns of the first layer's W, each drawn as an image: what the unit looks for.

    image_shape: (C, H, W) of the inputs (default: told from W's number of rows, e.g. 784 ->
    (1, 28, 28), 3072 -> (3, 32, 32)). Grey inputs give red/blue maps on one colour scale for all
    units (red: the unit's output rises when the pixel is brighter than the training pixels' mean,
    since the inputs are standardised by it); colour inputs give RGB images on one scale, grey where the
    weights are 0. A conv first layer is drawn by plot_filters.
    """
    W = next(layer for layer in model.layers if hasattr(layer, "params") and "W" in layer.params).params["W"]
    if W.ndim == 4:
        return plot_filters(W)
    C, H, Wd = image_shape_of(W.T, image_shape)
    n = min(n, W.shape[1])
    fig, axes = plt.subplots(int(np.ceil(n / cols)), cols, figsize=(1.5 * cols, 1.6 * np.ceil(n / cols)),
                             squeeze=False, layout="constrained")
    limit = max(float(np.abs(W[:, :n]).max()), 1e-8)
    templates = as_images(W[:, :n].T, (C, H, Wd))
    for j, ax in enumerate(axes.flat):
        ax.axis("off")
        if j < n:
            if C != 3:  # grey, or several channels side by side
                im = ax.imshow(templates[j], cmap="RdBu_r", vmin=-limit, vmax=limit)
            else:
                ax.imshow(np.clip(0.5 + 0.5 * templates[j] / limit, 0, 1))
            ax.set_title(label("unit {j}").format(j=j), fontsize=8)
    if C != 3:
        fig.colorbar(im, ax=axes, shrink=0.6, label=label("weight (one scale for all units)"))
        channels = label(", {C} channels side by side").format(C=C) if C > 1 else ""
        fig.suptitle(label("First-layer weights as {H}x{W} templates (units 0-{last}{channels})").format(
            H=H, W=Wd, last=n - 1, channels=channels) + "\n" + label(TEMPLATE_NOTE))
    else:
        fig.suptitle(label("First-layer weights as {H}x{W} RGB templates (units 0-{last}, one scale for all units)")
                     .format(H=H, W=Wd, last=n - 1) + "\n" +
                     label("grey: weight 0; a colour: the unit's output rises where the pixel has more of that colour "
                           "than the training pixels' mean"))
    return fig


def plot_weight_histograms(model, bins=100, class_names=None):
    """A histogram of the weights and one of the biases of every Linear layer.

    A bias of at most MAX_BARS values is drawn as one bar per unit instead (a histogram of 10
    numbers says little), labelled with class_names for the last layer if given and there are as
    many (else by unit index).
    """
    layers = linear_layers(model)
    fig, axes = plt.subplots(2, len(layers), figsize=(4.2 * len(layers), 5.5), squeeze=False, layout="constrained")
    for col, (i, layer) in enumerate(layers):
        for row, key in enumerate(("W", "b")):
            values = layer.params[key].ravel()
            ax = axes[row, col]
            ax.set_title(label("layer {i}: {key}  (mean {mean:+.3f}, std {std:.3f})").format(
                i=i, key=key, mean=values.mean(), std=values.std()), fontsize=9)
            if key == "b" and values.size <= MAX_BARS:
                ax.bar(range(values.size), values, color="tab:orange")
                ax.axhline(0, color="0.5", lw=0.8)
                ax.set_ylabel(label("bias value"))
                if class_names is not None and i == layers[-1][0] and values.size == len(class_names):
                    ax.set_xticks(range(values.size), labels(class_names), rotation=90, fontsize=7)
                    ax.set_xlabel(label("output unit (class)"))
                else:
                    ax.set_xlabel(label("unit"))
                continue
            ax.hist(values, bins=bins if key == "W" else 30, color="tab:blue" if key == "W" else "tab:orange")
            ax.set_xlabel(label("value"))
            ax.set_ylabel(label("count"))
    fig.suptitle(label("Weights (histograms) and biases of every Linear layer"))
    return fig


def plot_activations(model, X, y=None, class_names=CLASS_NAMES, image_shape=None):
    """Every layer's output for each input, reshaped to a near-square 2-D heatmap.

    X: inputs as the model takes them (already standardised), flat rows or images; y: optional
    true labels for the row titles; image_shape: (C, H, W) of the inputs (default: told from X).
    One row per input: the image, then each layer's output (Linear: pre-activations, then the
    activation's output, ...). The outputs of the last Linear layer and after it (the logits)
    are drawn as one column, a row per class, with the class names on its axis. Each layer's
    panels share one colour scale down the column (the inputs compare), each with its colour bar.
    Runs the model in eval mode (Dropout layers, then the identity, are left out) and reads each
    layer's cached .out.
    """
    layers = [(i, layer) for i, layer in enumerate(model.layers) if not isinstance(layer, Dropout)]
    images = as_images(X, image_shape)
    outs = []
    with evaluating(model):  # Dropout is then the identity, so it is left out of the picture
        for x in X:
            model.forward(x[None])
            outs.append([layer.out[0] for _, layer in layers])
    names = [f"{i}: {type(layer).__name__} ({'x'.join(map(str, layer.out.shape[1:]))})" for i, layer in layers]
    last_linear = max((c for c, (_, layer) in enumerate(layers) if type(layer).__name__ == "Linear"), default=0)
    cols = len(layers) + 1
    fig, axes = plt.subplots(len(X), cols, figsize=(2.1 * cols, 2.2 * len(X)), squeeze=False, layout="constrained")
    # One scale per layer, shared by every input: signed outputs centred on 0, outputs >= 0 from 0.
    limits = [max(max(float(np.abs(row[c]).max()) for row in outs), 1e-8) for c in range(len(layers))]
    signed = [any(float(row[c].min()) < 0 for row in outs) for c in range(len(layers))]
    for r, row_outs in enumerate(outs):
        show_image(axes[r, 0], images[r])
        pred = int(row_outs[-1].argmax())
        axes[r, 0].set_title((label("true: {true}").format(true=label(class_names[y[r]])) + "\n" if y is not None
                              else "") + label("pred: {pred}").format(pred=label(class_names[pred])), fontsize=8)
        for c, out in enumerate(row_outs, start=1):
            limit, sign = limits[c - 1], signed[c - 1]
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            per_class = c - 1 >= last_linear and out.size == len(class_names)
            # Activations >= 0 (ReLU, sigmoid) on a sequential map; signed ones centred on 0.
            im = ax.imshow(out.reshape(-1, 1) if per_class else out.reshape(grid_shape(out.size)),
                           cmap="RdBu_r" if sign else "viridis", vmin=-limit if sign else 0, vmax=limit,
                           aspect="auto" if out.size < 20 else "equal")
            if per_class:
                ax.set_yticks(range(len(class_names)), labels(class_names), fontsize=6)
            fig.colorbar(im, ax=ax, shrink=0.7)
            if r == 0:
                ax.set_title(names[c - 1], fontsize=8)
    fig.suptitle(label("Activations of every layer, each reshaped to 2-D (the last layer's outputs, the logits, as "
                       "one column with a row per class);\none colour scale per layer, shared by the images"))
    return fig


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
    suptitle = suptitle or label("{F} filters of {C} x {k} x {k} weights").format(F=F, C=C, k=k)
    if C != 3:
        return plot_image_grid(W.reshape(F * C, k, k), [label("filter {f}").format(f=f) +
                                                       (label(", ch {c}").format(c=c) if C > 1 else "")
                                                       for f in range(F) for c in range(C)],
                               cols=C if C > 1 else min(F, 8), suptitle=suptitle)
    fig, axes = plt.subplots(1, F, figsize=(1.3 * F, 1.6), squeeze=False, layout="constrained")
    for f, (ax, image) in enumerate(zip(axes[0], as_images(W))):
        show_image(ax, image, interpolation="nearest")
        ax.set_title(label("filter {f}").format(f=f), fontsize=8)
        ax.axis("off")
    fig.suptitle(suptitle)
    return fig


def activation_stage(model, layer):
    """Where model.layers[layer]'s output sits relative to the activation: "before ReLU (layer 1)",
    "after ReLU", "after ReLU and MaxPool2D", or "no activation" (a bare convolution); in the
    reader's language (label), since it is a figure's text."""
    layers = model.layers
    here = layers[layer]
    if isinstance(here, ACTIVATION_TYPES):
        return label("after {layer}").format(layer=type(here).__name__)
    if layer + 1 < len(layers) and isinstance(layers[layer + 1], ACTIVATION_TYPES):
        return label("before {layer} (layer {index}): negative values included").format(
            layer=type(layers[layer + 1]).__name__, index=layer + 1)
    for j in range(layer - 1, -1, -1):  # back through pooling and the like, to the last activation
        if isinstance(layers[j], ACTIVATION_TYPES):
            return label("after {first} and {second}").format(first=type(layers[j]).__name__,
                                                              second=type(here).__name__)
        if "W" in getattr(layers[j], "params", {}):
            break
    return label("no activation")


def plot_feature_maps(model, X, layer, y=None, class_names=CLASS_NAMES, max_maps=16):
    """For each image in X (n, C, H, W): the image, then the output channels of model.layers[layer].

    Runs the model in eval mode and reads the layer's cached .out (n, F, Ho, Wo). Each row (image)
    has its own colour scale, centred on 0 (red: the filter's pattern is present, blue: its
    opposite), with its colour bar; the title says whether the maps are before or after the activation.
    """
    with evaluating(model):
        logits = model.forward(X)
    maps = model.layers[layer].out[:, :max_maps]
    n, F = maps.shape[:2]
    fig, axes = plt.subplots(n, F + 1, figsize=(1.05 * (F + 1) + 0.8, 1.2 * n + 0.7), squeeze=False,
                             layout="constrained")
    for r, image in enumerate(as_images(X)):
        show_image(axes[r, 0], image)
        title = [label(class_names[y[r]])] if y is not None else []
        if logits.ndim == 2:  # a classifier, not just a stack of conv layers
            title.append(label("pred: {pred}").format(pred=label(class_names[int(logits[r].argmax())])))
        axes[r, 0].set_title("\n".join(title), fontsize=7)
        limit = max(float(np.abs(maps[r]).max()), 1e-8)
        for f in range(F):
            im = axes[r, f + 1].imshow(maps[r, f], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
            axes[r, f + 1].set_xticks([]), axes[r, f + 1].set_yticks([])
            if r == 0:
                axes[r, f + 1].set_title(label("map {f}").format(f=f), fontsize=7)
        bar = fig.colorbar(im, ax=axes[r, 1:], shrink=0.9, aspect=10, pad=0.01)
        bar.ax.tick_params(labelsize=6)
    fig.suptitle(label("Feature maps of layer {index}: {kind}, {stage}; {F} of shape {h}x{w}, one colour scale per "
                       "image (row)").format(index=layer, kind=type(model.layers[layer]).__name__,
                                             stage=activation_stage(model, layer), F=F, h=maps.shape[2],
                                             w=maps.shape[3]))
    return fig
