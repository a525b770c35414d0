"""The notebooks' figures: layout helpers, the confusion matrix's counts, saving, widget-free use."""
import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from utils.core.models import mlp  # noqa: E402
from utils.figures.data import grid_shape
from utils.figures.errors import plot_confusion_matrix
from utils.figures.model import plot_activations
from utils.figures.training import LiveCurves, plot_history, save_figure


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
    assert len(curves.axes[0].lines) == 3  # training, validation and the best-epoch marker


def test_live_curves_send_the_first_and_last_epochs_and_throttle_the_rest():
    class Handle:
        def __init__(self):
            self.sent = []

        def update(self, fig):
            self.sent.append(len(curves.axes[0].lines[0].get_xdata()))  # epochs drawn when sent

    def history(epochs):
        return pd.DataFrame({"epoch": range(1, epochs + 1), "train_loss": [1.0] * epochs,
                             "val_loss": [1.1] * epochs, "train_acc": [0.6] * epochs,
                             "val_acc": [0.5 + 0.01 * e for e in range(epochs)]})

    curves = LiveCurves(num_epochs=5, min_seconds=3600)
    curves.handle = Handle()
    for e in range(1, 6):
        curves(history(e))
    assert curves.handle.sent == [1, 5]  # epoch 1 at once, then only the last epoch within the hour
    with LiveCurves(num_epochs=5, min_seconds=3600) as curves:  # early stopping after epoch 3
        curves.handle = Handle()
        for e in range(1, 4):
            curves(history(e))
    assert curves.handle.sent == [1, 3]  # leaving the block sends the final curves
    curves = LiveCurves(num_epochs=5, min_seconds=0)
    curves.handle = Handle()
    for e in range(1, 4):
        curves(history(e))
    assert curves.handle.sent == [1, 2, 3]


def test_activation_plot_skips_dropout_and_keeps_the_training_mode():
    model = mlp([784, 12, 10], dropout=0.5, rng=0)  # Linear, ReLU, Dropout, Linear
    X = np.random.default_rng(0).standard_normal((2, 784)).astype(np.float32)
    fig = plot_activations(model, X, y=np.array([3, 4]))
    titles = [ax.get_title() for ax in fig.axes]
    assert "0: Linear (12)" in titles and "1: ReLU (12)" in titles and "3: Linear (10)" in titles
    assert not any("Dropout" in t for t in titles)
    assert model.training


# ---- any data set: shapes from the data, class names on every axis

CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def test_first_layer_templates_take_the_image_shape_from_the_model():
    from utils.figures.model import plot_first_layer_templates
    grey = plot_first_layer_templates(mlp([784, 8, 10], rng=0), n=4)
    assert "28x28 templates" in grey._suptitle.get_text()
    colour = plot_first_layer_templates(mlp([3072, 8, 10], rng=0), n=4)  # CIFAR-10: 32x32 RGB
    assert "32x32 RGB templates" in colour._suptitle.get_text()
    assert colour.axes[0].get_images()[0].get_array().shape == (32, 32, 3)
    two_channels = plot_first_layer_templates(mlp([2 * 3 * 5, 4, 10], rng=0), n=2, image_shape=(2, 3, 5))
    assert two_channels.axes[0].get_images()[0].get_array().shape == (3, 10)  # the channels side by side
    with pytest.raises(ValueError, match="pass image_shape"):
        plot_first_layer_templates(mlp([30, 4, 10], rng=0))


def test_activation_plot_labels_the_logits_with_the_class_names():
    model = mlp([3072, 6, 10], rng=0)
    X = np.random.default_rng(0).standard_normal((2, 3072)).astype(np.float32)
    fig = plot_activations(model, X, y=np.array([3, 4]), class_names=CIFAR_NAMES)
    logits = [ax for ax in fig.axes if ax.get_title() == "2: Linear (10)"][0]
    assert [t.get_text() for t in logits.get_yticklabels()] == list(CIFAR_NAMES)
    assert fig.axes[0].get_images()[0].get_array().shape == (32, 32, 3)  # the input, in colour
    assert "true: cat" in fig.axes[0].get_title()


def test_data_figures_draw_colour_images_and_their_class_names():
    from utils.figures.data import plot_class_means, plot_samples
    from utils.figures.errors import plot_predictions
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    y = np.arange(40) % 10
    fig = plot_samples(X, y, per_class=2, class_names=CIFAR_NAMES)
    assert fig.axes[0].get_images()[0].get_array().shape == (32, 32, 3)
    assert [ax.get_ylabel() for ax in fig.axes[::2]] == list(CIFAR_NAMES)
    fig = plot_class_means(X.reshape(40, -1), y, class_names=CIFAR_NAMES, image_shape=(3, 32, 32))
    assert [ax.get_title() for ax in fig.axes[:10]] == list(CIFAR_NAMES)
    proba = np.full((4, 10), 0.1)
    fig = plot_predictions(X[:4].reshape(4, -1).astype(np.float32), y[:4], proba, class_names=CIFAR_NAMES)
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == list(CIFAR_NAMES)


def test_per_class_table_matches_the_notebook_computation():
    from utils.figures.errors import per_class_table
    rng = np.random.default_rng(0)
    y, y_hat = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    names = ["a", "b", "c", "d"]
    table = per_class_table(y, y_hat, names)
    for k, name in enumerate(names):  # notebook 04's loop, written out
        true_k, pred_k = y == k, y_hat == k
        confused = np.bincount(y_hat[true_k & ~pred_k], minlength=4)
        row = table.loc[name]
        assert row["recall"] == (true_k & pred_k).sum() / true_k.sum()
        assert row["precision"] == (true_k & pred_k).sum() / max(pred_k.sum(), 1)
        assert row["most confused with"] == names[confused.argmax()] and row["errors"] == confused.sum()
    assert list(table["recall"]) == sorted(table["recall"])  # worst first
    perfect = per_class_table([0, 1, 1], [0, 1, 1], ["a", "b", "c"], sort=False)
    assert perfect["most confused with"].tolist() == ["-", "-", "-"] and np.isnan(perfect.loc["c", "recall"])


def test_in_a_notebook_save_figure_shows_the_saved_png_and_closes_the_figure(tmp_path, monkeypatch):
    from utils.figures import training
    shown = []
    monkeypatch.setattr(training.matplotlib, "get_backend", lambda: "module://matplotlib_inline.backend_inline")
    monkeypatch.setattr(training, "display", shown.append)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, "line.png", folder=tmp_path)
    assert len(shown) == 1 and shown[0].data == path.read_bytes()  # one rendering: the file's own bytes
    assert not plt.fignum_exists(fig.number)  # closed, so plt.show() does not draw it again


def test_save_figure_reads_the_static_folder_when_called(tmp_path, monkeypatch):
    fig, _ = plt.subplots()
    monkeypatch.setenv("NN_STATIC_DIR", str(tmp_path / "later"))  # set after utils.figures.training was imported
    assert save_figure(fig, "x.png") == tmp_path / "later" / "x.png"
