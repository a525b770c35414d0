"""Test a trained model from its checkpoint alone: the assignment's test step.

    python -m utils evaluate log/best_model.npz                      # loss, accuracy, per class, confusion
    python -m utils evaluate log/best_model.npz --figures static/    # and the figures as PNG

The checkpoint says which data set the model was trained on and how its inputs were
standardised, so the test images go through exactly the same preprocessing.
"""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from utils.core import datasets
from utils.core.checkpoint import load_model
from utils.core.preprocess import scale
from utils.core.train import evaluate
from utils.figures.errors import confusion_counts, per_class_table, plot_confusion_matrix
from utils.figures.model import plot_activations, plot_weight_heatmaps
from utils.plumbing import cli
from utils.plumbing.errors import CheckpointError
from utils.plumbing.language import _, language, width

DATASETS = {784: "fashion_mnist", 3072: "cifar10"}  # for checkpoints older than the "dataset" record


def checkpoint_dataset(model, meta):
    """The data set a checkpoint's model was trained on: its record, or else its input size."""
    if "dataset" in meta:
        return meta["dataset"]
    W = model.layers[0].params.get("W")
    # A Linear layer's W is (inputs, outputs); a Conv2D's is (filters, channels, k, k).
    size = None if W is None else W.shape[0] if W.ndim == 2 else {1: 784, 3: 3072}.get(W.shape[1])
    if size not in DATASETS:
        raise CheckpointError(_("the checkpoint records no data set, and its first layer does not tell one"))
    return DATASETS[size]


def test_set(model, meta, data_dir=None):
    """The official test set, preprocessed as the checkpoint's training data was.

    Returns (X_test, y_test, X_test_raw, class_names): X_test float32 standardised with the
    checkpoint's mean and std, flat rows for an MLP or (N, C, H, W) for a conv net; X_test_raw
    the uint8 images (N, C, H, W) for pictures.
    """
    dataset = checkpoint_dataset(model, meta)
    if "mean" not in meta or "std" not in meta:
        raise CheckpointError(_("the checkpoint records no mean and std of its training data; "
                                "it cannot say how to standardise the test images"))
    X_raw, y_test = datasets.load_split(dataset, "test", data_dir)  # the one place the test split is read
    X_raw = X_raw.reshape(len(X_raw), -1, *X_raw.shape[-2:])  # (N, C, H, W) for both data sets
    X = scale(X_raw)
    X -= np.float32(meta["mean"])
    X /= np.float32(meta["std"])
    if type(model.layers[0]).__name__ == "Linear":
        X = X.reshape(len(X), -1)
    names = meta.get("class_names") or list(datasets.CIFAR10_CLASSES if dataset == "cifar10" else datasets.CLASS_NAMES)
    return X, y_test, X_raw, list(names)


def report(checkpoint, data_dir=None):
    """Everything the test step reports, as a dict: model, meta, loss, accuracy, per_class, confusion, arrays."""
    model, meta = load_model(checkpoint)
    X, y, X_raw, names = test_set(model, meta, data_dir)
    loss, acc = evaluate(model, X, y)
    proba = model.predict_proba(X)
    y_hat = proba.argmax(axis=1)
    return {"model": model, "meta": meta, "loss": loss, "accuracy": acc, "X_test": X, "y_test": y,
            "X_test_raw": X_raw, "proba": proba, "y_hat": y_hat, "class_names": names,
            "per_class": per_class_table(y, y_hat, names), "confusion": confusion_counts(y, y_hat, len(names))}


def write_figures(r, folder):
    """The confusion matrix, weight heatmaps and activation heatmaps of a report, as PNG files in folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, y, y_hat, names = r["model"], r["y_test"], r["y_hat"], r["class_names"]
    figures = {"confusion_matrix.png": lambda: plot_confusion_matrix(y, y_hat, class_names=names),
               "weights_heatmaps.png": lambda: plot_weight_heatmaps(model, class_names=names)}
    examples = [int(np.flatnonzero(y == k)[0]) for k in range(min(5, len(names))) if (y == k).any()]
    figures["activations.png"] = lambda: plot_activations(model, r["X_test"][examples], y[examples],
                                                                class_names=names)
    written = []
    for name, draw in figures.items():
        fig = draw()
        fig.savefig(folder / name, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(folder / name)
    return written


def shown(per_class):
    """The per-class table with its words (class names, column names) in the reader's language, for printing."""
    table = per_class.rename(index=_, columns=_).rename_axis(index=_(per_class.index.name or "class"))
    column = _("most confused with")
    if column in table:
        table[column] = table[column].map(_)
    return table


def main(argv=None):
    return cli.run(_evaluate, argv)


def _evaluate(argv):
    p = cli.parser("python -m utils evaluate",
                   _("Load a checkpoint alone and report its test loss, accuracy, per-class accuracy and "
                     "confusion matrix."))
    p.add_argument("checkpoint", help=_("a .npz checkpoint written by training (e.g. log/best_model.npz)"))
    p.add_argument("--figures", metavar="DIR", help=_("also write the confusion matrix, weight heatmaps "
                                                        "and activation heatmaps as PNG files into DIR"))
    p.add_argument("--data-dir", help=_("folder with the data set's files (default: search as usual)"))
    a = p.parse_args(argv)
    r = report(a.checkpoint, a.data_dir)
    meta, n = r["meta"], len(r["y_test"])
    exp = meta.get("experiment", {})
    print(_("{checkpoint}: {name}, epoch {epoch}, validation accuracy {acc:.4f} (as recorded in the file)").format(
        checkpoint=a.checkpoint, name=exp.get("name", _("no experiment recorded")), epoch=meta.get("epoch", "?"),
        acc=meta.get("metrics", {}).get("val_acc", float("nan"))))
    print(_("test loss {loss:.4f}, test accuracy {acc:.4f} ({right} of {n})").format(
        loss=r["loss"], acc=r["accuracy"], right=round(r["accuracy"] * n), n=n) + "\n")
    names = [_(c) for c in r["class_names"]]  # the class names in the reader's language (only for display)
    widest = max(map(width, names))  # a Chinese character takes two columns
    confusion = pd.DataFrame(r["confusion"], index=[" " * (widest - width(c)) + c for c in names],
                             columns=[str(i) for i in range(len(names))])
    with pd.option_context("display.unicode.east_asian_width", language() == "zh"):  # columns line up in Chinese
        print(shown(r["per_class"].round(3)).to_string(), "\n")
        print(_("confusion matrix (rows: true class; columns: predicted class, numbered as the rows are ordered)"))
        print(confusion.to_string())
    if a.figures:
        for path in write_figures(r, a.figures):
            print(_("wrote {path}").format(path=path))

