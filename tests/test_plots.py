"""The notebooks' figures: layout helpers, the confusion matrix's counts, saving, widget-free use."""
import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from module import mlp  # noqa: E402
from utils.plots import (LiveCurves, grid_shape, plot_activations, plot_confusion_matrix, plot_history,  # noqa: E402
                         save_figure)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("n, shape", [(784, (28, 28)), (512, (16, 32)), (10, (2, 5)), (7, (1, 7)), (1, (1, 1))])
def test_grid_shape_is_the_squarest_exact_rectangle(n, shape):
    assert grid_shape(n) == shape


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    fig = plot_confusion_matrix([0, 0, 0, 1, 2], [0, 1, 1, 1, 0], class_names=["a", "b", "c"])
    ax = fig.axes[0]
    # seaborn writes the annotations row by row: rows are true classes, columns predictions.
    counts = np.array([int(t.get_text()) for t in ax.texts]).reshape(3, 3)
    np.testing.assert_array_equal(counts, [[1, 2, 0], [0, 1, 0], [1, 0, 0]])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]


def test_save_figure_writes_a_png_and_leaves_no_temporary_file(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, "line.png", folder=tmp_path)
    assert path == tmp_path / "line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["line.png"]


def test_history_plot_marks_the_best_validation_epoch():
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.6, 0.7],
                            "train_acc": [0.6, 0.8, 0.9], "val_acc": [0.55, 0.81, 0.79]})
    fig = plot_history(history)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert "best: epoch 2, 0.8100" in legend


def test_live_curves_work_outside_a_notebook():
    curves = LiveCurves(num_epochs=3)  # no IPython kernel here: no display handle
    history = pd.DataFrame({"epoch": [1], "train_loss": [1.0], "val_loss": [1.1],
                            "train_acc": [0.6], "val_acc": [0.55]})
    curves(history, model=None)
    assert len(curves.axes[0].lines) == 2


def test_activation_plot_skips_dropout_and_keeps_the_training_mode():
    model = mlp([784, 12, 10], dropout=0.5, rng=0)  # Linear, ReLU, Dropout, Linear
    X = np.random.default_rng(0).standard_normal((2, 784)).astype(np.float32)
    fig = plot_activations(model, X, y=np.array([3, 4]))
    titles = [ax.get_title() for ax in fig.axes]
    assert "0: Linear (12)" in titles and "1: ReLU (12)" in titles and "3: Linear (10)" in titles
    assert not any("Dropout" in t for t in titles)
    assert model.training
