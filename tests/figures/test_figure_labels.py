"""What the figures say about themselves: axis labels, colour bars, titles and legends that match
what is drawn (the teacher's review of 2026-12-02, section 5). Cheap: no training beyond a few steps."""
import io
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from utils.core.datasets import CLASS_NAMES  # noqa: E402
from utils.core.models import lenet5, mlp  # noqa: E402
from utils.figures.data import plot_class_balance, plot_class_means, plot_pixel_histograms, plot_samples  # noqa: E402
from utils.figures.model import (  # noqa: E402
    plot_activations,
    plot_feature_maps,
    plot_first_layer_templates,
    plot_weight_heatmaps,
    plot_weight_histograms,
)
from utils.figures.playground import Playground, layer_histograms  # noqa: E402
from utils.figures.playground_pictures import captioned_png, templates_caption  # noqa: E402
from utils.figures.training import LiveCurves, plot_history, plot_training_signals  # noqa: E402
from utils.search.results import plot_search_heatmaps  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def colorbar_axes(fig):
    """The axes of fig that are colour bars (matplotlib marks them with a _colorbar attribute)."""
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def history(epochs, l2=0.5):
    e = np.arange(1, epochs + 1)
    loss = 1.0 / e
    return pd.DataFrame({"epoch": e, "train_loss": loss, "train_total_loss": loss + l2, "val_loss": loss + 0.1,
                         "train_acc": 0.5 + 0.04 * e, "val_acc": [0.6, 0.7, 0.65][:epochs] if epochs <= 3 else
                         0.5 + 0.03 * e})


# ---- training curves (F8, F15)

def test_loss_panel_says_it_is_the_data_loss_and_draws_the_objective_dashed():
    fig = plot_history(history(3))
    loss_ax, acc_ax = fig.axes
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert "training data loss (cross-entropy, without the L2 term)" in labels
    assert "training objective (cross-entropy + L2 term)" in labels
    dashed = [line for line in loss_ax.lines if line.get_label().startswith("training objective")]
    assert dashed[0].get_linestyle() == "--"
    assert loss_ax.get_ylabel() and acc_ax.get_ylabel() == "accuracy"
    for ax in (loss_ax, acc_ax):  # the best epoch (2, by validation accuracy) marked on both panels
        assert any(line.get_linestyle() == ":" and line.get_xdata()[0] == 2 for line in ax.lines)


def test_without_an_l2_term_no_objective_line_and_the_title_says_without():
    fig = plot_history(history(3, l2=0.0))
    loss_ax = fig.axes[0]
    assert not any(line.get_label().startswith("training objective") for line in loss_ax.lines)
    assert "without the L2 term" in loss_ax.get_title()


def visible_ticks(ax):
    low, high = ax.get_xlim()
    return [t for t in ax.get_xticks() if low <= t <= high]


@pytest.mark.parametrize("num_epochs", [None, 1])
def test_a_one_epoch_run_has_one_whole_epoch_tick(num_epochs):
    fig = plot_history(history(1), num_epochs=num_epochs)
    fig.canvas.draw()
    for ax in fig.axes:
        assert visible_ticks(ax) == [1.0]


def test_live_curves_and_longer_runs_have_integer_epoch_ticks():
    curves = LiveCurves(num_epochs=7)
    curves(history(3), model=None)
    curves.fig.canvas.draw()
    for ax in curves.axes:
        ticks = visible_ticks(ax)
        assert ticks and all(float(t).is_integer() for t in ticks)
        assert ax.get_xlim() == (0.5, 7.5)


# ---- dead units (F9)

def signals_monitor(dead):
    return SimpleNamespace(
        X_probe=np.zeros((1000, 4)),
        ratios=pd.DataFrame({"layer": [0, 0], "epoch": [1, 2], "ratio": [1e-3, 1e-3]}),
        activations=pd.DataFrame({"layer": [1, 1], "epoch": [1, 2], "kind": ["ReLU"] * 2,
                                  "dead": dead, "saturated": [0.1, 0.2]}))


def test_dead_unit_axis_follows_the_data_with_a_small_floor():
    fig = plot_training_signals(signals_monitor([0.0, 0.004]))
    dead_ax = fig.axes[1]
    assert dead_ax.get_ylim() == (0, 1.0)  # 0.4 % on a 0-1 % axis: visible, not sitting on the axis
    assert "1,000-image probe" in dead_ax.get_title() and "revive" in dead_ax.get_title()
    fig.canvas.draw()
    assert all(t.get_text().endswith("%") for t in dead_ax.get_yticklabels() if t.get_text())
    assert plot_training_signals(signals_monitor([0.0, 0.1])).axes[1].get_ylim()[1] == pytest.approx(11)
    assert fig.axes[2].get_ylim()[1] == pytest.approx(22)  # the saturated share keeps its 5 % floor


# ---- the playground (F1, F2, F3, C10)

def test_an_archived_run_states_every_learning_rate_it_trained_with():
    pg = Playground("xor", ui=False)
    pg.run(epochs=2)
    pg.set(lr=0.01)
    assert pg.label().endswith("lr=0.1 (2 ep) → lr=0.01 (next)")
    pg.run(epochs=1)
    pg.set(hidden_layers=3)  # a new network: the finished run joins the overlay
    (label, rows), = pg.runs
    assert label.endswith(": lr=0.1 (2 ep) → lr=0.01 (1 ep)") and len(rows) == 3
    assert "lr=" not in label.split(":")[0]  # the learning rate is not also stated once, as if constant
    assert pg.label() == "xor 2-8-8-8-2 tanh sgd m=0.9 lr=0.01 bs=16 L2=0"  # the new run: one setting so far


def test_a_run_reset_before_training_with_a_new_setting_is_labelled_by_what_it_trained_with():
    pg = Playground("xor", ui=False)
    pg.run(epochs=1)
    pg.set(lr=0.3)
    pg.reset()
    assert pg.runs[0][0] == "xor 2-8-8-2 tanh sgd m=0.9 lr=0.1 bs=16 L2=0"


def test_playground_figure_labels_its_axes_and_shares_the_accuracy_range():
    figures = []
    for name, settings in (("spirals", {"lr": 0.01}), ("gaussians", {"activation": "relu"})):
        pg = Playground(name, **settings)
        pg.run(epochs=2)
        figures.append(pg.view.stats_figure)
    for f in figures:
        assert f.ax_acc.get_ylabel() == "accuracy" and f.ax_acc.get_ylim() == (0, 1)
        assert f.ax_loss.get_ylabel() and "no L2 term" in f.ax_loss.get_title()
        assert "share" in f.ax_act.get_ylabel() and "share" in f.ax_grad.get_ylabel()
    relu = figures[1]
    assert ">= 4" in relu.ax_act.get_xlabel() and "clipped" in relu.ax_act.get_xlabel()
    assert "≥ 4" in [t.get_text() for t in relu.ax_act.get_xticklabels()]
    assert "clipped" not in figures[0].ax_act.get_xlabel()  # tanh's outputs cannot leave [-1, 1]


def test_relu_histograms_report_their_clipped_range():
    relu, tanh = mlp([2, 4, 2], "relu", rng=0), mlp([2, 4, 2], "tanh", rng=0)
    X = np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32) * 10
    relu.predict_proba(X), tanh.predict_proba(X)
    assert layer_histograms(relu)["clipped"] == (-0.5, 4.0) and layer_histograms(tanh)["clipped"] is None


def test_the_saved_playground_png_carries_the_colour_meaning(tmp_path, monkeypatch):
    pg = Playground("circles")
    pg.run(epochs=1)
    assert "red = class 0, blue = class 1" in pg.view.caption_text
    picture = Image.open(io.BytesIO(pg.view.picture.value))
    captioned = Image.open(io.BytesIO(captioned_png(pg.view.picture.value, pg.view.caption_text)))
    header = np.asarray(captioned.convert("L"))[:captioned.height - picture.height]
    assert header.shape[0] > 20 and (header < 128).any()  # lines of dark text above the picture
    monkeypatch.setenv("NN_STATIC_DIR", str(tmp_path))
    saved = Image.open(pg.save_png("pg.png"))
    assert saved.height >= captioned.height  # the caption went into the file


def test_templates_caption_says_each_unit_has_its_own_scale():
    text = templates_caption(mlp([784, 40, 10], rng=0), (28, 28))
    assert "first 32 units" in text and "its own max |w|" in text and "brighter than the training pixels' mean" in text


# ---- data figures (F4, F5, F6)

def test_grey_images_and_class_means_use_one_convention_and_say_it():
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), np.arange(40) % 10
    samples = plot_samples(X, y, per_class=2, rng=0)
    assert samples.axes[0].get_images()[0].get_cmap().name == "gray"  # black 0, white bright, as stored
    assert "black = 0, white = 255" in samples._suptitle.get_text()
    assert samples.axes[0].get_images()[0].get_clim() == (0, 255)  # the stored range, not each image's own
    means = plot_class_means(X, y)
    assert "dark: low pixel values, bright: high" in means._suptitle.get_text()


def test_pixel_histograms_say_how_many_images_they_count():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (30, 8), dtype=np.uint8)
    fig = plot_pixel_histograms(raw, raw[:12] / 255.0, max_images=20, rng=1)
    assert "a random 20 of 30 images" in fig.axes[0].get_title()
    assert "(12 images)" in fig.axes[1].get_title()
    again = plot_pixel_histograms(raw, raw[:12] / 255.0, max_images=20, rng=1)
    assert [p.get_height() for p in fig.axes[0].patches] == [p.get_height() for p in again.axes[0].patches]


def test_class_balance_legend_covers_no_bar():
    y = np.arange(1000) % 10
    fig = plot_class_balance({"train": y, "validation": y[:300], "test": y[:200]})
    fig.canvas.draw()
    legend = fig.axes[0].get_legend().get_window_extent()
    bars = [p.get_window_extent() for p in fig.axes[0].patches]
    assert not any(legend.overlaps(b) for b in bars)


# ---- model figures (F10-F14)

def test_weight_heatmaps_name_the_classes_and_say_when_downsampled():
    names = [f"class {k}" for k in range(10)]
    fig = plot_weight_heatmaps(mlp([784, 512, 10], rng=0), class_names=names)
    first, last = fig.axes[0], [ax for ax in fig.axes if ax.get_title().startswith("layer 2")][0]
    assert [t.get_text() for t in last.get_xticklabels()] == names
    assert "downsampled: 784 rows on" in first.get_title() and "512 columns on" in first.get_title()
    assert "512 rows on" in last.get_title() and "columns" not in last.get_title()  # 10 columns fit
    small = plot_weight_heatmaps(mlp([20, 8, 10], rng=0))
    assert not any("downsampled" in ax.get_title() for ax in small.axes)
    assert [ax.get_xlabel() for ax in small.axes if ax.get_title().startswith("layer 2")] == ["output unit"]
    assert all(cb.get_ylabel() == "weight" for cb in colorbar_axes(small))


def test_template_colour_bar_says_weight_and_the_title_gives_the_standardised_meaning():
    fig = plot_first_layer_templates(mlp([784, 8, 10], rng=0), n=4)
    (bar,) = colorbar_axes(fig)
    assert bar.get_ylabel().startswith("weight") and "excites" not in bar.get_ylabel()
    assert "brighter than the training pixels' mean" in fig._suptitle.get_text()


def test_a_small_bias_is_drawn_as_bars_by_class():
    fig = plot_weight_histograms(mlp([784, 40, 10], rng=0), class_names=CLASS_NAMES)
    titles = [ax.get_title() for ax in fig.axes]
    last_b = fig.axes[titles.index(next(t for t in titles if t.startswith("layer 2: b")))]
    assert len(last_b.patches) == 10 and [t.get_text() for t in last_b.get_xticklabels()] == list(CLASS_NAMES)
    hidden_b = fig.axes[titles.index(next(t for t in titles if t.startswith("layer 0: b")))]
    assert len(hidden_b.patches) != 40 and hidden_b.get_ylabel() == "count"  # 40 values: a histogram
    assert not any("bell" in t.lower() for t in titles + [fig._suptitle.get_text()])
    tiny = plot_weight_histograms(mlp([784, 6, 10], rng=0))
    assert [ax.get_xlabel() for ax in tiny.axes if ax.get_title().startswith("layer 0: b")] == ["unit"]
    assert [ax.get_xlabel() for ax in tiny.axes if ax.get_title().startswith("layer 2: b")] == ["unit"]  # no names


def test_activation_title_matches_the_logits_drawing_and_every_panel_has_a_colour_bar():
    model = mlp([784, 12, 10], rng=0)
    X = np.random.default_rng(0).standard_normal((3, 784)).astype(np.float32)
    fig = plot_activations(model, X, y=np.array([0, 1, 2]))
    title = fig._suptitle.get_text()
    assert "a row per class" in title and "one column per class" not in title
    logits = [ax for ax in fig.axes if ax.get_title() == "2: Linear (10)"][0]
    assert logits.get_images()[0].get_array().shape == (10, 1)  # one column, a row per class
    panels = [ax for ax in fig.axes if ax.get_images() and not hasattr(ax, "_colorbar")]
    assert len(colorbar_axes(fig)) == len(panels) - 3  # one bar per layer panel (not for the 3 input images)
    # One scale per layer: the three images' logits share it.
    clims = {ax.get_images()[0].get_clim() for ax in panels if ax.get_images()[0].get_array().shape == (10, 1)}
    assert len(clims) == 1


@pytest.mark.parametrize("layer, words", [(0, "before ReLU (layer 1)"), (3, "before ReLU (layer 4)"),
                                          (4, "after ReLU"), (5, "after ReLU and MaxPool2D")])
def test_feature_maps_say_before_or_after_the_activation_and_have_colour_bars(layer, words):
    model = lenet5(rng=0)
    X = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    fig = plot_feature_maps(model, X, layer, y=np.array([0, 1]))
    assert words in fig._suptitle.get_text()
    assert len(colorbar_axes(fig)) == 2  # one per image (row)


# ---- the search heatmap (F7)

def search_table(states, notes=None):
    n = len(states)
    return pd.DataFrame({"trial": range(n), "lr": [0.01, 0.1, 0.01, 0.1][:n], "hidden_sizes": ["64"] * 2 + ["32"] * 2,
                         "l2_lambda": [0.0] * n, "val_acc": [0.85, 0.884, 0.851, np.nan][:n],
                         "val_loss": [0.4] * n, "best_epoch": [2] * n, "epochs": [4, 4, 2, 1][:n],
                         "seconds": [1.0] * n, "state": states, "note": notes or [""] * n,
                         "val_acc_curve": ["[]"] * n})


def test_search_heatmap_states_its_range_and_marks_pruned_cells_in_words():
    fig = plot_search_heatmaps(search_table(["complete", "complete", "pruned", "pruned"]))
    (bar,) = colorbar_axes(fig)
    assert "0.850 to 0.884" in bar.get_ylabel()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "0.850" in texts and "0.884" in texts  # values written in the cells
    assert "pruned at\nepoch 2" in texts and not any("0.851" in t for t in texts)  # no score to compare
    assert "diverged" not in fig._suptitle.get_text()


def test_search_heatmap_mentions_divergence_only_when_a_cell_diverged():
    fig = plot_search_heatmaps(search_table(["complete", "complete", "pruned", "pruned"],
                                            notes=["", "", "", "the training loss became nan"]))
    assert "diverged" in fig._suptitle.get_text()
    assert "pruned at\nepoch 2" in [t.get_text() for t in fig.axes[0].texts]
