"""The Chinese edition's figures and playground: with NN_LANG=zh every text a figure shows is Chinese
(or an identifier: a layer's name, a unit, lr=0.1), drawn with the CJK font (no missing glyphs); the
playground's and the training panel's widgets are labelled in Chinese while their values stay the
code's; in English all of it stays as it was.

Every figure function of utils/figures and utils/search/results.py is drawn here on small synthetic
inputs. The figure tests are skipped where no CJK font is installed (label() keeps English then).
"""
import io
import json
import re
import warnings
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from PIL import Image, ImageFont  # noqa: E402

from utils.core.datasets import CLASS_NAMES, DATASETS  # noqa: E402
from utils.core.models import lenet5, mlp  # noqa: E402
from utils.figures import data as data_figures  # noqa: E402
from utils.figures import errors, model, playground_pictures, training  # noqa: E402
from utils.figures.panel import training_panel  # noqa: E402
from utils.figures.playground import Playground  # noqa: E402
from utils.figures.toy_data import make_toy  # noqa: E402
from utils.plumbing import fonts, language, po  # noqa: E402
from utils.search.results import plot_search_curves, plot_search_heatmaps  # noqa: E402

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
# What a figure may show in Latin letters without a Chinese character: layer and optimiser names,
# units and symbols, the short names of settings, and key=value settings (lr=0.1, hidden_sizes=64).
ALLOWED = re.compile(r"\b(?:Linear|ReLU|LeakyReLU|Tanh|Sigmoid|Conv2D|MaxPool2D|Flatten|Dropout|Softmax|MLP|LeNet|"
                     r"log10|dW|lr|L2|sgd|adam|tanh|relu|sigmoid|std|px|logits)\b|[\w.]+ ?= ?\S+")
MATH = re.compile(r"\$[^$]*\$")  # mathtext (log-scale ticks are "$\mathdefault{10^{-3}}$"): symbols, not words
# The texts label() is given through a constant (not a literal the extraction can see): each must be translated.
CONSTANTS = [data_figures.GREY_NOTE, model.TEMPLATE_NOTE, training.DATA_LOSS_LABEL, training.TOTAL_LOSS_LABEL,
             playground_pictures.BOUNDARY_CAPTION, playground_pictures.TEMPLATES_CAPTION]


@pytest.fixture
def chinese(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    monkeypatch.setattr(fonts, "_found", {})
    with matplotlib.rc_context():
        if fonts.installed_family() is None:
            pytest.skip("no CJK font installed (Debian: apt-get install fonts-noto-cjk); the figures stay English")
        yield monkeypatch
    plt.close("all")


def english_words(text):
    """The runs of 3+ Latin letters of text that are neither mathtext nor an allowed identifier."""
    return re.findall(r"[A-Za-z]{3,}", ALLOWED.sub(" ", MATH.sub(" ", text)))


def untranslated(draw):
    """(texts with English words and no Chinese, 'Glyph missing' warnings) of the figure draw() returns."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = draw()
        fig.canvas.draw()
    texts = {t.get_text() for t in fig.findobj(Text)}
    english = sorted(t for t in texts if english_words(t) and not CJK.search(t))
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert any(CJK.search(t) for t in texts), "the figure shows no Chinese at all"
    return english, missing


def images(n=40, shape=(28, 28), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def monitor():
    epochs = np.arange(3)
    return SimpleNamespace(
        samples={0: None, 2: None}, X_probe=np.zeros((1000, 4)),
        weight_histograms=lambda i, bins: (epochs, np.linspace(-1, 1, bins + 1), np.full((3, bins), 1.0 / bins)),
        ratios=pd.DataFrame({"layer": [0, 0, 2, 2], "epoch": [1, 2, 1, 2], "ratio": [1e-3, 2e-3, 1e-2, 5e-3]}),
        activations=pd.DataFrame({"layer": [1, 1], "epoch": [1, 2], "kind": ["ReLU"] * 2, "dead": [0.0, 0.01],
                                  "saturated": [0.1, 0.2]}))


def history(epochs=4):
    e = np.arange(1, epochs + 1)
    return pd.DataFrame({"epoch": e, "train_loss": 1 / e, "train_total_loss": 1 / e + 0.1, "val_loss": 1 / e + 0.2,
                         "train_acc": 0.5 + 0.05 * e, "val_acc": 0.45 + 0.05 * e})


def search_results():
    curves = [[0.7, 0.8, 0.85], [0.7, 0.8, 0.884], [0.6, 0.7], [0.5], [0.3]]
    return pd.DataFrame({
        "trial": range(5), "lr": [0.01, 0.1, 0.01, 0.1, 0.3], "hidden_sizes": ["64", "64", "32", "32", "32"],
        "l2_lambda": [0.0, 0.0, 0.0, 0.0, 1e-3], "val_acc": [0.85, 0.884, 0.7, 0.5, 0.3], "val_loss": [0.4] * 5,
        "best_epoch": [3, 3, 2, 1, 1], "epochs": [3, 3, 2, 1, 1], "seconds": [1.0] * 5,
        "state": ["complete", "complete", "pruned", "pruned", "failed"], "note": ["", "", "", "the loss became nan",
                                                                                  "boom"],
        "val_acc_curve": [json.dumps(c) for c in curves]})


def proba(n, k=10, seed=0):
    p = np.random.default_rng(seed).random((n, k))
    return p / p.sum(axis=1, keepdims=True)


y40 = np.arange(40) % 10
X_flat = np.random.default_rng(1).standard_normal((3, 784)).astype(np.float32)
X_conv = np.random.default_rng(2).standard_normal((2, 1, 28, 28)).astype(np.float32)
FIGURES = {
    "plot_samples": lambda: data_figures.plot_samples(images(), y40, per_class=2, rng=0),
    "plot_samples (standardised)": lambda: data_figures.plot_samples(images().astype(np.float32) / 255, y40,
                                                                     per_class=2, rng=0),
    "plot_class_balance": lambda: data_figures.plot_class_balance({"train": y40, "validation": y40[:20],
                                                                   "test": y40[:10]}),
    "plot_pixel_histograms": lambda: data_figures.plot_pixel_histograms(images(30), images(12) / 255.0, max_images=20),
    "plot_class_means": lambda: data_figures.plot_class_means(images(), y40),
    "plot_class_means (colour)": lambda: data_figures.plot_class_means(
        images(40, (3, 32, 32)), y40, class_names=DATASETS["cifar10"]["class_names"]),
    "plot_confusion_matrix": lambda: errors.plot_confusion_matrix(y40, (y40 + (y40 > 6)) % 10),
    "plot_class_errors": lambda: errors.plot_class_errors({"MLP": (y40, (y40 + 1) % 10), "LeNet-5": (y40, y40)},
                                                          split="validation"),
    "plot_class_errors (test)": lambda: errors.plot_class_errors({"MLP": (y40, (y40 + 1) % 10)}),
    "plot_predictions": lambda: errors.plot_predictions(images(5), y40[:5], proba(5), cols=3),
    "plot_weight_heatmaps": lambda: model.plot_weight_heatmaps(mlp([784, 512, 10], rng=0), class_names=CLASS_NAMES),
    "plot_first_layer_templates": lambda: model.plot_first_layer_templates(mlp([784, 8, 10], rng=0), n=4),
    "plot_first_layer_templates (colour)": lambda: model.plot_first_layer_templates(mlp([3072, 8, 10], rng=0), n=4),
    "plot_first_layer_templates (2 channels)": lambda: model.plot_first_layer_templates(
        mlp([2 * 64, 8, 10], rng=0), n=4, image_shape=(2, 8, 8)),
    "plot_first_layer_templates (conv)": lambda: model.plot_first_layer_templates(lenet5(rng=0)),
    "plot_weight_histograms": lambda: model.plot_weight_histograms(mlp([784, 40, 10], rng=0), class_names=CLASS_NAMES),
    "plot_weight_histograms (no names)": lambda: model.plot_weight_histograms(mlp([784, 6, 10], rng=0)),
    "plot_activations": lambda: model.plot_activations(mlp([784, 12, 10], rng=0), X_flat, y=np.array([0, 1, 2])),
    "plot_image_grid": lambda: model.plot_image_grid(np.ones((3, 4, 4)), suptitle=model.label("filter {f}").format(f=0)),
    "plot_filters": lambda: model.plot_filters(np.random.default_rng(0).standard_normal((4, 2, 3, 3))),
    "plot_filters (colour)": lambda: model.plot_filters(np.random.default_rng(0).standard_normal((4, 3, 3, 3))),
    **{f"plot_feature_maps (layer {layer})": (lambda layer=layer: model.plot_feature_maps(
        lenet5(rng=0), X_conv, layer, y=np.array([0, 1]))) for layer in (0, 1, 4, 5)},
    "plot_history": lambda: training.plot_history(history()),
    "plot_history (no L2)": lambda: training.plot_history(history().assign(train_total_loss=lambda d: d.train_loss)),
    "LiveCurves": lambda: live_curves(),
    "plot_weight_evolution": lambda: training.plot_weight_evolution(monitor()),
    "plot_training_signals": lambda: training.plot_training_signals(monitor()),
    "plot_training_signals (no probe)": lambda: training.plot_training_signals(
        SimpleNamespace(**{**vars(monitor()), "X_probe": None})),
    "plot_search_heatmaps": lambda: plot_search_heatmaps(search_results()),
    "plot_search_curves": lambda: plot_search_curves(search_results(), top=2),
    "playground StatsFigure": lambda: playground_figure(),
}


def live_curves():
    curves = training.LiveCurves(num_epochs=5)
    curves(history(2))
    return curves.fig


def playground_figure():
    """The playground's curves and histograms, with an archived run whose settings changed, a decaying lr
    and ReLU's clipped histogram range."""
    pg = Playground("gaussians", activation="relu", ui=True)
    pg.run(epochs=2)
    pg.set(lr=0.03, lr_schedule="step")
    pg.run(epochs=1)
    pg.set(hidden_layers=1)  # a new network: the finished run joins the overlay
    pg.run(epochs=1)
    pg.set(lr=0.01)  # set, not yet trained with: "(next)"
    pg.view.draw(stats=True)
    return pg.view.stats_figure.fig


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_text_is_chinese_and_drawn_with_the_cjk_font(chinese, name):
    english, missing = untranslated(FIGURES[name])
    assert english == [], f"{name}: texts left in English"
    assert missing == [], f"{name}: glyphs missing from the font"


def test_the_texts_label_gets_from_constants_are_translated():
    table = {e.msgid: e for path in language.catalog_paths("zh") for e in po.read(path) if e.msgid}
    for text in CONSTANTS:
        assert text in table and CJK.search(table[text].msgstr) and not table[text].fuzzy, text


def test_the_playground_caption_is_chinese_and_its_png_uses_the_cjk_font(chinese):
    pg = Playground("circles")
    assert CJK.search(pg.view.caption_text) and "P(" in pg.view.caption_text
    font, em = playground_pictures.caption_font(pg.view.caption_text, 12)
    assert em == 1.0 and isinstance(font, ImageFont.FreeTypeFont) and "cjk" in font.path.lower()
    assert font.getbbox("验")[2] > 0
    png = playground_pictures.captioned_png(pg.view.picture.value, pg.view.caption_text)
    assert png.startswith(b"\x89PNG")
    caption = playground_pictures.templates_caption(mlp([784, 40, 10], rng=0), (28, 28))
    assert CJK.search(caption) and "32" in caption and "28x28" in caption


# ---- widgets and printed lines (no font needed: ipywidgets and print show any Unicode)

def widget_texts(view):
    return ({k: w.description for k, w in view.controls.items()}, {k: b.description for k, b in view.buttons.items()})


def test_the_playground_widgets_and_lines_are_chinese_and_their_values_unchanged(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    pg = Playground("spirals", lr_schedule="step")
    controls, buttons = widget_texts(pg.view)
    assert all(CJK.search(text) for text in [*controls.values(), *buttons.values()]), (controls, buttons)
    assert set(buttons) == {"Play", "Pause", "Step", "Reset", "Clear runs"}  # keyed by the English, as before
    headers = [box.children[0].value for box in pg.view.widget.children[0].children]
    assert headers == ["<b>数据</b>", "<b>网络</b>", "<b>训练</b>"]
    dataset, schedule = pg.controls["dataset"], pg.controls["lr_schedule"]
    assert dataset.value == "spirals" and all(CJK.search(label) for label in dataset._options_labels[:4])
    assert [v for _, v in dataset._options_full] == ["spirals", "circles", "xor", "gaussians", "fashion_mnist"]
    assert schedule.value == "step" and all(CJK.search(label) for label in schedule._options_labels)
    assert pg.controls["optimizer"].options == ("sgd", "adam")  # identifiers stay
    schedule.value = "cosine"  # the shown label chose, the code gets the value
    assert pg.settings["lr_schedule"] == "cosine"
    assert CJK.search(pg.summary()) and "spirals" not in pg.summary()
    pg.run(epochs=2)
    line = pg.summary()
    assert line.startswith("第 2 轮（第 ") and "训练损失" in line and "验证损失" in line, line
    assert re.search(r"准确率 \d\.\d{3}", line)
    assert "第 2 轮" in pg.view.status.value and "验证损失" in pg.view.status.value
    pg.set(lr=0.01)
    pg.run(epochs=1)
    pg.set(hidden_layers=1)
    assert pg.runs[0][0].startswith("spirals 2-8-8-2")  # the stored label stays the code's English
    shown = playground_pictures.shown_run_label(pg.runs[0][0], printed=True)
    assert pg.earlier_runs() == f"之前的训练：{[shown]}"
    assert shown.startswith("双螺旋 2-8-8-2") and "L2=0：lr=0.1（余弦调度）（2 轮） → lr=0.01（余弦调度）（1 轮）" in shown, shown


def test_a_diverged_playground_says_so_in_chinese(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    pg = Playground("gaussians", activation="relu", lr=3.0)
    pg.set(lr=1000, l2_lambda=1)
    pg.run(epochs=3)
    assert "发散" in pg.message and "降低学习率" in pg.message and not pg.running


def test_the_playground_errors_are_chinese_and_name_the_setting(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    with pytest.raises(ValueError, match=r"未知的演练场设置 \['learning_rate'\]"):
        Playground("xor", ui=False, learning_rate=0.1)
    with pytest.raises(ValueError, match=r"Playground：noise = 2：应为 \[0, 1\] 之内的数"):
        Playground("xor", ui=False, noise=2)
    with pytest.raises(ValueError, match="未知的玩具数据集 'moons'.*spirals"):
        make_toy("moons")
    monkeypatch.setenv("NN_LANG", "en")
    with pytest.raises(ValueError, match=r"^Playground: noise = 2: expected a number in \[0, 1\]$"):
        Playground("xor", ui=False, noise=2)


CFG = {"seed": 0, "model": {"builder": "mlp", "hidden_sizes": [16], "activation": "relu", "dropout": 0.0},
       "train": {"lr": 0.05, "num_epochs": 1, "batch_size": 32, "l2_lambda": 0.0, "optimizer": "sgd", "momentum": 0.9,
                 "nesterov": False, "lr_schedule": "cosine", "decay_factor": 0.5, "decay_steps": 2000, "patience": 0}}


def small_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 784)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    return {"X_train": X, "y_train": y, "X_val": X[:16], "y_val": y[:16], "image_shape": (1, 28, 28), "num_classes": 10}


def test_the_training_panel_is_chinese_and_keeps_its_values(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    panel = training_panel(CFG, small_data(), quick_size=32)
    texts = [w.description for w in panel.sliders.values()] + [panel.quick.description, panel.button.description]
    assert all(CJK.search(t) for t in texts), texts
    assert "32" in panel.quick.description
    assert panel.sliders["lr_schedule"].value == "cosine" and CJK.search(panel.sliders["lr_schedule"]._options_labels[0])
    assert panel.sliders["optimizer"].options == ("sgd", "adam")
    assert "下一次训练" in panel.status.value and "学习率 0.05" in panel.status.value and "学习率调度 余弦调度" in panel.status.value
    panel.sliders["hidden_sizes"].value = "16-x"
    assert "隐藏层大小：应为用 '-' 隔开的数字" in panel.status.value and "'16-x'" in panel.status.value
    panel.sliders["hidden_sizes"].value = "16"
    panel.train(quick=True)
    assert "完成" in panel.status.value and "验证准确率" in panel.status.value


def test_in_english_the_widgets_and_lines_are_as_before(monkeypatch):
    monkeypatch.setenv("NN_LANG", "en")
    pg = Playground("spirals")
    controls, buttons = widget_texts(pg.view)
    assert controls["lr"] == "learning rate" and controls["dataset"] == "data set"
    assert controls["beta1"] == "beta1 (Adam)" and controls["hidden_layers"] == "hidden layers"
    assert buttons == {name: name for name in ("Play", "Pause", "Step", "Reset", "Clear runs")}
    assert pg.view.buttons["Step"].tooltip == "train one epoch"
    assert pg.controls["dataset"].options == ("spirals", "circles", "xor", "gaussians", "fashion_mnist")
    assert pg.controls["lr_schedule"].options == ("constant", "step", "exponential", "cosine")
    assert pg.summary() == "spirals 2-8-8-2 tanh sgd m=0.9 lr=0.1 bs=16 L2=0: not trained yet"
    pg.run(epochs=1)
    pg.set(lr=0.01)
    pg.run(epochs=1)
    pg.set(hidden_layers=1)
    printed = io.StringIO()
    print("earlier runs:", [label for label, _ in pg.runs], file=printed)  # notebook 00's line
    assert pg.earlier_runs() + "\n" == printed.getvalue()
    pg.run(epochs=1)
    h = pg.history[-1]
    assert pg.summary() == (f"epoch 1 (step {h['step']}): train loss {h['train_loss']:.3f} acc {h['train_acc']:.3f}, "
                            f"validation loss {h['val_loss']:.3f} acc {h['val_acc']:.3f}")
    assert pg.view.status.value.startswith("<span class='pg-status-text'>epoch 1 · step ")
    assert playground_pictures.shown_run_label("xor 2-8-2 tanh: lr=0.1 (2 ep) → lr=0.01 (next)") == \
        "xor 2-8-2 tanh: lr=0.1 (2 ep) → lr=0.01 (next)"
    panel = training_panel(CFG, small_data())
    assert panel.sliders["lr"].description == "learning rate" and panel.button.description == "Train"
    assert panel.quick.description == "quick: 5,000 training images"
    assert panel.status.value.startswith("<span class='tp-status-text'>next run: ")


def test_in_english_the_figures_are_as_before(monkeypatch):
    monkeypatch.setenv("NN_LANG", "en")
    fig = errors.plot_class_errors({"MLP": (y40, (y40 + 1) % 10)}, split="validation")
    assert fig.axes[0].get_title() == "Validation errors per true class"
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "MLP (100.0% overall)"
    fig = data_figures.plot_pixel_histograms(images(30), images(12) / 255.0, max_images=20, rng=1)
    assert fig.axes[0].get_title() == "Raw pixels (a random 20 of 30 images)"
    assert fig.axes[1].get_xlabel() == "(x / 255 - mean) / std"
    fig = model.plot_feature_maps(lenet5(rng=0), X_conv, 0)
    assert fig._suptitle.get_text().startswith("Feature maps of layer 0: Conv2D, before ReLU (layer 1): negative")
    fig = data_figures.plot_class_means(images(), y40)
    assert fig._suptitle.get_text() == ("Mean image per class (dark: low pixel values, bright: high, as in the "
                                        "samples)")
    plt.close("all")


def test_the_playground_png_keeps_the_default_font_in_english(monkeypatch):
    monkeypatch.setenv("NN_LANG", "en")
    assert playground_pictures.caption_font(playground_pictures.BOUNDARY_CAPTION, 12)[1] == 0.55
    picture = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(picture, format="png")
    assert playground_pictures.captioned_png(picture.getvalue(), "hello").startswith(b"\x89PNG")
