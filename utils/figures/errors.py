"""What a model gets wrong on the test set (notebooks 04 and 05): the per-class table, the
confusion matrix, the error rate per class and individual predictions.

All of them start from one confusion matrix (confusion_counts) and label every axis with
class_names (default Fashion-MNIST's; pass data["class_names"] for another data set).
"""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from utils.core.datasets import CLASS_NAMES
from utils.figures.data import as_images, show_image
from utils.plumbing.fonts import label, labels


def confusion_counts(y_true, y_pred, num_classes):
    """(num_classes, num_classes) int array: [t, p] = how many images of true class t were predicted p."""
    k = num_classes
    return np.bincount(np.asarray(y_true) * k + np.asarray(y_pred), minlength=k * k).reshape(k, k)


def per_class_table(y_true, y_pred, class_names=CLASS_NAMES, sort=True):
    """Recall, precision, the class each is most often mistaken for, and its errors, per true class.

    y_true, y_pred: labels (N,). Returns a DataFrame indexed by class name with columns
    "recall", "precision" (NaN for a class never seen / 0 if never predicted), "most confused with"
    ("-" without errors) and "errors"; worst recall first unless sort=False (then class order).
    """
    counts = confusion_counts(y_true, y_pred, len(class_names))
    hits, seen, predicted = np.diag(counts), counts.sum(axis=1), counts.sum(axis=0)
    confused = counts - np.diag(hits)  # each row: where that class's errors went
    table = pd.DataFrame({
        "class": list(class_names),
        "recall": np.divide(hits, seen, out=np.full(len(hits), np.nan), where=seen > 0),
        "precision": hits / np.maximum(predicted, 1),
        "most confused with": [class_names[row.argmax()] if row.any() else "-" for row in confused],
        "errors": confused.sum(axis=1),
    }).set_index("class")
    return table.sort_values("recall", kind="stable") if sort else table


def plot_confusion_matrix(y_true, y_pred, class_names=CLASS_NAMES):
    """Heatmap of the confusion matrix, each row normalised to the true class (numbers: counts)."""
    counts = confusion_counts(y_true, y_pred, len(class_names))
    share = counts / counts.sum(axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(9, 7.5))
    names = labels(class_names)
    sns.heatmap(share, annot=counts, fmt="d", cmap="Blues", xticklabels=names, yticklabels=names,
                cbar_kws={"label": label("share of the true class")}, ax=ax)
    ax.set_xlabel(label("predicted class"))
    ax.set_ylabel(label("true class"))
    ax.set_title(label("Confusion matrix on the test set (numbers: image counts)"))
    return fig


def plot_class_errors(results, class_names=CLASS_NAMES, split="test"):
    """Bars of the error rate per true class, one colour per model. results: {name: (y_true, y_pred)};
    split: which images they are ("validation", "test"), for the title."""
    fig, ax = plt.subplots(figsize=(10, 3.8), layout="constrained")
    width = 0.8 / len(results)
    for j, (name, (y_true, y_pred)) in enumerate(results.items()):
        table = per_class_table(y_true, y_pred, class_names, sort=False)
        ax.bar(np.arange(len(class_names)) + (j - (len(results) - 1) / 2) * width, 100 * (1 - table["recall"]),
               width, label=label("{name} ({percent:.1f}% overall)").format(
                   name=name, percent=100 * table["errors"].sum() / len(y_true)))
    ax.set_xticks(range(len(class_names)), labels(class_names), rotation=30, ha="right")
    ax.set_ylabel(label("% of the class misclassified"))
    title = {"test": label("Test errors per true class"), "validation": label("Validation errors per true class"),
             "train": label("Train errors per true class"), "training": label("Training errors per true class")}
    ax.set_title(title.get(split, f"{split.capitalize()} errors per true class"))
    ax.legend()
    return fig


def plot_predictions(X, y_true, proba, class_names=CLASS_NAMES, cols=4, image_shape=None):
    """Each image with its true label and a bar chart of the predicted class probabilities.

    X: (n, C * H * W) flat rows or images; image_shape: (C, H, W) (default: told from X);
    y_true: (n,); proba: (n, K). Green bar: the true class; red: a wrong top guess.
    """
    images, n = as_images(X, image_shape), len(X)
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
        show_image(ax_img, images[j])
        ax_img.set_title(label("true: {true}\npred: {pred} ({p:.2f})").format(
                         true=label(class_names[y_true[j]]), pred=label(class_names[pred]), p=proba[j, pred]),
                         fontsize=8, color="black" if pred == y_true[j] else "red")
        colors = ["tab:gray"] * len(class_names)
        if pred != y_true[j]:
            colors[pred] = "tab:red"
        colors[y_true[j]] = "tab:green"
        ax_bar.barh(range(len(class_names)), proba[j], color=colors)
        ax_bar.set_xlim(0, 1)
        ax_bar.invert_yaxis()
        ax_bar.set_yticks(range(len(class_names)), labels(class_names), fontsize=6)
        ax_bar.tick_params(axis="x", labelsize=6)
        ax_bar.set_xlabel(label("probability"), fontsize=7)
    fig.tight_layout()
    return fig
