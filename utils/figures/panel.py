"""Sliders built from an experiment config, and a Train panel that retrains without rerunning cells.

    sliders = hyperparameter_sliders(cfg)          # cfg["model"], cfg["train"] -> {key: widget}
    panel = training_panel(cfg, data)              # sliders + Train button + "quick" checkbox + curves
    panel                                          # in a notebook; panel.train(quick=True) from code

Every value a slider produces goes through utils.plumbing.config.check_value, the one validation per
key; the sliders that do not apply under the others are disabled (momentum under Adam, the
decay settings under a constant or cosine schedule, the MLP's sizes for LeNet-5).
"""
import io

import ipywidgets as widgets
import numpy as np
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from utils.core.experiment import build_model
from utils.core.train import train
from utils.figures.training import plot_history
from utils.plumbing.config import MODEL_KEYS, SCHEMA, check_value
from utils.plumbing.language import _, language

STYLE = {"description_width": "120px"}
LAYOUT = {"width": "380px"}
# Slider positions; the config's own value is always added, so a slider starts exactly at it.
POSITIONS = {
    "lr": [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 1.0],
    "batch_size": [16, 32, 64, 128, 256, 512],
    "l2_lambda": [0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
    "decay_steps": [500, 1000, 2000, 5000, 10000],
}


def slider_labels():
    """{key: the slider's description}, in the reader's language (read when a panel is built)."""
    return {"lr": _("learning rate"), "num_epochs": _("epochs"), "batch_size": _("batch size"),
            "l2_lambda": _("L2 lambda"), "optimizer": _("optimiser"), "momentum": _("momentum (SGD)"),
            "nesterov": _("Nesterov (SGD)"), "lr_schedule": _("lr schedule"), "decay_factor": _("decay factor"),
            "decay_steps": _("decay steps"), "patience": _("patience (0 off)"), "hidden_sizes": _("hidden sizes"),
            "activation": _("activation"), "dropout": _("dropout")}


def option_labels():
    """{value: what a drop-down shows for it} for the options that are words; identifiers (sgd, relu) show as is."""
    return {"constant": _("constant"), "step": _("step"), "exponential": _("exponential"), "cosine": _("cosine")}


def setting_list(values):
    """The settings of the next run as the status line shows them: key=value in English ("lr=0.03"),
    the sliders' labels and shown options in Chinese ("学习率 0.03，学习率调度 余弦调度")."""
    if language() == "en":
        return ", ".join(f"{k}={v}" for k, v in values.items())
    names, shown = slider_labels(), option_labels()
    words = {True: _("True"), False: _("False")}

    def value(k, v):
        if k == "hidden_sizes":
            return "-".join(map(str, v))
        return words[v] if isinstance(v, bool) else shown.get(v, v) if isinstance(v, str) else v

    return _(", ").join(f"{names.get(k, k)} {value(k, v)}" for k, v in values.items())


def _positions(key, current):
    return [(f"{v:g}", v) for v in sorted({*POSITIONS[key], current})]


def _slider(key, value):
    common = {"description": slider_labels()[key], "style": STYLE, "layout": widgets.Layout(**LAYOUT)}
    if key in POSITIONS:
        return widgets.SelectionSlider(options=_positions(key, value), value=value, continuous_update=False, **common)
    if key == "num_epochs":
        return widgets.IntSlider(value=value, min=1, max=max(100, value), continuous_update=False, **common)
    if key == "patience":
        return widgets.IntSlider(value=value, min=0, max=max(20, value), continuous_update=False, **common)
    if key in ("momentum", "dropout", "decay_factor"):
        low = 0.05 if key == "decay_factor" else 0.0
        high = 1.0 if key == "decay_factor" else 0.99 if key == "momentum" else 0.8
        return widgets.FloatSlider(value=value, min=low, max=high, step=0.05 if key != "momentum" else 0.01,
                                   continuous_update=False, **common)
    if key in ("optimizer", "lr_schedule", "activation"):
        section = "model" if key == "activation" else "train"
        shown = option_labels()
        pairs = [(shown.get(v, v), v) for v in SCHEMA[section][key].options]  # (what it shows, the value)
        options = pairs if any(k != v for k, v in pairs) else list(SCHEMA[section][key].options)
        return widgets.Dropdown(options=options, value=value, **common)
    if key == "nesterov":
        return widgets.Checkbox(value=value, description=slider_labels()[key], indent=False)
    if key == "hidden_sizes":
        return widgets.Text(value="-".join(map(str, value)), continuous_update=False, **common)
    raise ValueError(f"no slider for {key!r}")


TRAIN_KEYS = tuple(SCHEMA["train"])


def inactive_keys(values, builder="mlp"):
    """The keys whose sliders do not apply under the other values (disabled, and not used)."""
    off = set()
    if values.get("optimizer") == "adam":
        off |= {"momentum", "nesterov"}
    elif values.get("momentum") == 0:
        off.add("nesterov")
    if values.get("lr_schedule") in ("constant", "cosine"):  # cosine runs to 0 at the last step: no decay settings
        off |= {"decay_factor", "decay_steps"}
    if builder != "mlp":
        off |= {"hidden_sizes", "activation"}
    return off


def hyperparameter_sliders(cfg):
    """One widget per model and training setting of the config, starting at the config's values.

    cfg: a config from utils.plumbing.config.load_config, or a dict with "model" and "train" tables
    shaped like one. Returns {key: widget}, model keys first; inactive ones are disabled and
    stay in step as the others move.
    """
    for section in ("model", "train"):
        if not isinstance(cfg.get(section), dict):
            raise ValueError(_("hyperparameter_sliders: the config needs a [{section}] table, got keys {keys}")
                             .format(section=section, keys=sorted(cfg)))
    builder = cfg["model"].get("builder", "mlp")
    values = {k: cfg["model"][k] for k in MODEL_KEYS if k in cfg["model"]}
    values.update({k: cfg["train"][k] for k in TRAIN_KEYS if k in cfg["train"]})
    sliders = {key: _slider(key, value) for key, value in values.items()}

    def refresh(_=None):
        off = inactive_keys({k: w.value for k, w in sliders.items()}, builder)
        for key, w in sliders.items():
            w.disabled = key in off

    for w in sliders.values():
        w.observe(refresh, "value")
    refresh()
    return sliders


def slider_values(sliders):
    """(model, train) settings from the sliders, each checked; inactive keys keep their values but are unused."""
    model, train = {}, {}
    for key, w in sliders.items():
        value = w.value
        if key == "hidden_sizes":
            try:
                value = [int(s) for s in value.replace(",", "-").replace(" ", "").split("-") if s]
            except ValueError:
                raise ValueError(_("hidden sizes: expected numbers separated by '-', e.g. 512-256, got {value}")
                                 .format(value=repr(w.value))) from None
        section = "model" if key in MODEL_KEYS else "train"
        (model if section == "model" else train)[key] = check_value(section, key, value, where="slider")
    if train.get("nesterov") and (train.get("optimizer") != "sgd" or train.get("momentum") == 0):
        train["nesterov"] = False  # the checkbox is disabled then; the config would reject the pair
    return model, train


def _png(fig):
    buf = io.BytesIO()
    fig.canvas.print_png(buf)
    return buf.getvalue()


class TrainingPanel:
    """The sliders, a Train button, a "quick" checkbox and live curves, for one config and data set.

    train() builds a fresh model from the sliders and calls utils.core.train.train, the one loop;
    the curves image is redrawn after every epoch. model, history and the settings of the last
    run stay on the panel for the cells after it.
    """

    def __init__(self, cfg, data, quick_size=5000, checkpoint_path=None):
        self.cfg, self.data, self.quick_size, self.checkpoint_path = cfg, data, int(quick_size), checkpoint_path
        self.sliders = hyperparameter_sliders(cfg)
        self.quick = widgets.Checkbox(value=False, description=_("quick: {n:,} training images").format(
            n=self.quick_size), indent=False)
        self.button = widgets.Button(description=_("Train"), icon="play", button_style="primary")
        self.button.on_click(lambda _: self._on_click())
        self.status = widgets.HTML()
        self.curves = widgets.Image(format="png")
        self.model = self.history = self.settings = None
        for w in self.sliders.values():
            w.observe(lambda _: self._describe(), "value")
        columns = list(self.sliders.values())
        self.widget = widgets.VBox([
            widgets.HBox([widgets.VBox(columns[:7]), widgets.VBox(columns[7:])]),
            widgets.HBox([self.button, self.quick]), self.status, self.curves])
        for key, w in self.sliders.items():  # CSS classes for the browser test (tests/figures/test_browser.py)
            w.add_class(f"tp-{key}")
        for name in ("quick", "button", "status", "curves", "widget"):
            getattr(self, name).add_class(f"tp-{name}")
        self._describe()

    def _describe(self, extra=""):
        try:
            model, train = slider_values(self.sliders)
            used = {k: v for k, v in {**model, **train}.items()
                    if k not in inactive_keys({**model, **train}, self.cfg["model"].get("builder", "mlp"))}
            text = _("next run: {settings}").format(settings=setting_list(used))
        except ValueError as e:
            text = f"<b style='color:#b00'>{e}</b>"
        self.status.value = f"<span class='tp-status-text'>{text}{extra}</span>"

    def _on_click(self):
        try:
            self.train(quick=self.quick.value)
        except (ValueError, FloatingPointError) as e:  # a widget callback has nowhere else to report
            self._describe("<br><b style='color:#b00'>" + _("training stopped: {error}").format(error=e) + "</b>")

    def _build_model(self, model_settings):
        cfg = {**self.cfg, "model": {**self.cfg["model"], **model_settings}}
        return build_model(cfg, self.data)

    def train(self, quick=False, progress=False):
        """Train a fresh model with the sliders' settings; quick: on quick_size training images."""
        model_settings, train_settings = slider_values(self.sliders)
        d, seed = self.data, self.cfg.get("seed", 0)
        X_train, y_train = d["X_train"], d["y_train"]
        if quick and self.quick_size < len(y_train):
            keep = np.sort(np.random.default_rng(seed).permutation(len(y_train))[:self.quick_size])
            X_train, y_train = X_train[keep], y_train[keep]
        self.model = self._build_model(model_settings)
        fig = Figure(figsize=(11, 3.8), dpi=72, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2)

        def redraw(history, model):
            plot_history(history, axes, train_settings["num_epochs"])
            self.curves.value = _png(fig)
            last = history.iloc[-1]
            self._describe("<br>" + _("epoch {epoch}/{epochs}: validation accuracy {acc:.4f}").format(
                epoch=int(last.epoch), epochs=train_settings["num_epochs"], acc=last.val_acc))

        self.button.disabled = True
        try:
            self.history = train(self.model, X_train, y_train, d["X_val"], d["y_val"], seed=seed,
                                 callback=redraw, progress=progress, checkpoint_path=self.checkpoint_path,
                                 **train_settings)
        finally:
            self.button.disabled = False
        self.settings = {**model_settings, **train_settings, "quick": bool(quick), "train_size": len(y_train)}
        best = self.history.loc[self.history.val_acc.idxmax()]
        self._describe("<br>" + _("done: best epoch {epoch}, validation accuracy {acc:.4f} ({n} training images)")
                       .format(epoch=int(best.epoch), acc=best.val_acc, n=f"{len(y_train):,}"))
        return self.history

    def _ipython_display_(self):
        display(self.widget)


def training_panel(cfg, data, quick_size=5000, checkpoint_path=None):
    """A TrainingPanel for the config (its model and train tables) and a data dict of experiment.load_data."""
    return TrainingPanel(cfg, data, quick_size=quick_size, checkpoint_path=checkpoint_path)
