"""The playground's widgets (utils/figures/playground.py holds the training,
utils/figures/playground_pictures.py the pictures they show).
"""
import html
import io

import ipywidgets as widgets
from PIL import Image

from utils.figures.playground_pictures import (
    BOUNDARY_CAPTION,
    BoundaryImage,
    StatsFigure,
    captioned_png,
    templates_caption,
    templates_png,
)
from utils.figures.toy_data import DATASETS
from utils.plumbing.fonts import label
from utils.plumbing.language import _

ACTIVATION_NAMES = ["relu", "leaky_relu", "tanh", "sigmoid"]
SLIDER_CHOICES = {
    "units": [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 32, 64, 128, 256],
    "lr": [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
    "batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256],
    "l2_lambda": [0.0, 1e-5, 1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1],
    "beta2": [0.9, 0.99, 0.999, 0.9999],
    "decay_steps": [100, 200, 500, 1000, 2000, 5000, 10000],
}
# key: (widget class, options); the descriptions, in the reader's language, come from descriptions()
CONTROLS = {
    "dataset": (widgets.Dropdown, {"options": list(DATASETS)}),
    "noise": (widgets.FloatSlider, {"min": 0, "max": 0.5, "step": 0.05}),
    "val_share": (widgets.FloatSlider, {"min": 0.1, "max": 0.9, "step": 0.1}),
    "seed": (widgets.IntSlider, {"min": 0, "max": 20}),
    "hidden_layers": (widgets.IntSlider, {"min": 0, "max": 4}),
    "units": (widgets.SelectionSlider, {}),
    "activation": (widgets.Dropdown, {"options": ACTIVATION_NAMES}),
    "dropout": (widgets.FloatSlider, {"min": 0, "max": 0.8, "step": 0.05}),
    "optimizer": (widgets.Dropdown, {"options": ["sgd", "adam"]}),
    "lr": (widgets.SelectionSlider, {}),
    "batch_size": (widgets.SelectionSlider, {}),
    "l2_lambda": (widgets.SelectionSlider, {}),
    "momentum": (widgets.FloatSlider, {"min": 0, "max": 0.99, "step": 0.01}),
    "nesterov": (widgets.Checkbox, {"indent": False}),
    "beta1": (widgets.FloatSlider, {"min": 0, "max": 0.99, "step": 0.01}),
    "beta2": (widgets.SelectionSlider, {}),
    "lr_schedule": (widgets.Dropdown, {"options": ["constant", "step", "exponential", "cosine"]}),
    "decay_factor": (widgets.FloatSlider, {"min": 0.05, "max": 1, "step": 0.05}),
    "decay_steps": (widgets.SelectionSlider, {}),
}
GROUPS = {"Data": ["dataset", "noise", "val_share", "seed"],
          "Network": ["hidden_layers", "units", "activation", "dropout"],
          "Training": ["optimizer", "lr", "batch_size", "l2_lambda", "momentum", "nesterov", "beta1", "beta2",
                       "lr_schedule", "decay_factor", "decay_steps"]}
BUTTONS = (("Play", "play"), ("Pause", "pause"), ("Step", "step-forward"), ("Reset", "undo"),
           ("Clear runs", "eraser"))  # (name, icon); pg.view.buttons is keyed by these English names


def descriptions():
    """{key: the control's description}, in the reader's language (read when a view is built)."""
    return {"dataset": _("data set"), "noise": _("noise"), "val_share": _("validation share"), "seed": _("seed"),
            "hidden_layers": _("hidden layers"), "units": _("units per layer"), "activation": _("activation"),
            "dropout": _("dropout"), "optimizer": _("optimiser"), "lr": _("learning rate"),
            "batch_size": _("batch size"), "l2_lambda": _("L2 lambda"), "momentum": _("momentum (SGD)"),
            "nesterov": _("Nesterov (SGD)"), "beta1": _("beta1 (Adam)"), "beta2": _("beta2 (Adam)"),
            "lr_schedule": _("lr schedule"), "decay_factor": _("decay factor"), "decay_steps": _("decay steps")}


def shown_names():
    """What the panel titles, the buttons and the drop-downs show for an English name or a value that is a
    word (a data set, a learning-rate schedule); identifiers (sgd, relu) are shown as they are."""
    return {"Data": _("Data"), "Network": _("Network"), "Training": _("Training"),
            "Play": _("Play"), "Pause": _("Pause"), "Step": _("Step"), "Reset": _("Reset"),
            "Clear runs": _("Clear runs"), "spirals": _("spirals"), "circles": _("circles"), "xor": _("xor"),
            "gaussians": _("gaussians"), "fashion_mnist": _("fashion_mnist"),
            "constant": _("constant"), "step": _("step"), "exponential": _("exponential"), "cosine": _("cosine")}


def choices(values, current):
    """Slider positions: the values and the current one, each labelled as training uses it."""
    return [(f"{v:g}", v) for v in sorted({*values, current})]


def inactive(settings):
    """The settings that do not apply under the others (their controls are disabled)."""
    s, off = settings, set()
    if s["dataset"] == "fashion_mnist":
        off |= {"noise", "val_share"}
    if s["hidden_layers"] == 0:
        off |= {"units", "activation", "dropout"}
    off |= {"momentum", "nesterov"} if s["optimizer"] == "adam" else {"beta1", "beta2"}
    if s["optimizer"] == "sgd" and s["momentum"] == 0:
        off.add("nesterov")
    if s["lr_schedule"] in ("constant", "cosine"):
        off.add("decay_factor")
    if s["lr_schedule"] == "constant":
        off.add("decay_steps")
    return off


class PlaygroundView:
    """The controls, the buttons and the images of one Playground, kept in step with its settings."""

    def __init__(self, pg):
        self.pg, self._syncing = pg, False
        self.controls = {}
        described, shown = descriptions(), shown_names()
        for key, (kind, options) in CONTROLS.items():
            description = described[key]
            if key in SLIDER_CHOICES:
                options = {"options": choices(SLIDER_CHOICES[key], pg.settings[key])}
            elif kind is widgets.Dropdown:  # (what it shows, the value code uses): only the shown text is translated
                pairs = [(shown.get(v, v), v) for v in options["options"]]
                options = {"options": pairs if any(k != v for k, v in pairs) else options["options"]}
            if kind is widgets.Checkbox:
                w = kind(value=pg.settings[key], description=description, **options)
            else:  # sliders send their value when released, not at every pixel of a drag
                extra = {} if kind is widgets.Dropdown else {"continuous_update": False}
                w = kind(value=pg.settings[key], description=description, style={"description_width": "120px"},
                         layout=widgets.Layout(width="370px"), **extra, **options)
            w.observe(self._on_change, "value")
            self.controls[key] = w
        self.buttons = {name: widgets.Button(description=shown[name], icon=icon, layout=widgets.Layout(width="80px"))
                        for name, icon in BUTTONS}
        self.buttons["Clear runs"].layout.width = "110px"
        self.buttons["Step"].tooltip = _("train one epoch")
        for name, action in (("Play", pg.play), ("Pause", pg.pause), ("Step", lambda: pg.run(epochs=1)),
                             ("Reset", pg.reset), ("Clear runs", pg.clear_runs)):
            self.buttons[name].on_click(lambda _, action=action: action())
        self.status = widgets.HTML()
        self.caption = widgets.HTML(layout=widgets.Layout(width="240px"))
        self.picture = widgets.Image(format="png", layout=widgets.Layout(width="240px", min_width="240px"))
        self.stats = widgets.Image(format="png", layout=widgets.Layout(min_width="620px"))
        self.stats_figure, self._boundary, self._boundary_data = StatsFigure(), None, None
        panels = [widgets.VBox([widgets.HTML(f"<b>{shown[title]}</b>"), *(self.controls[k] for k in keys)])
                  for title, keys in GROUPS.items()]
        self.widget = widgets.HBox([
            widgets.VBox(panels, layout=widgets.Layout(width="380px", min_width="380px")),
            widgets.VBox([widgets.HBox(list(self.buttons.values())), self.status,
                          widgets.HBox([widgets.VBox([self.caption, self.picture],
                                                     layout=widgets.Layout(width="250px", min_width="250px")),
                                        self.stats], layout=widgets.Layout(flex_flow="row wrap"))]),
        ], layout=widgets.Layout(flex_flow="row wrap"))  # on a narrow screen the figures go below the controls
        # CSS classes name the parts for the browser test (tests/figures/test_browser.py) and for styling.
        for key, w in self.controls.items():
            w.add_class(f"pg-{key}")
        for name, w in self.buttons.items():
            w.add_class("pg-" + name.lower().replace(" ", "-"))
        for name in ("status", "picture", "stats", "widget"):
            getattr(self, name).add_class(f"pg-{name}")
        self.update_controls()
        self.draw(stats=True)

    def _on_change(self, change):
        if self._syncing:
            return
        key = next(k for k, w in self.controls.items() if w is change.owner)
        try:
            self.pg.set(**{key: change.new})
        except ValueError as e:  # shown in the status line: a widget callback has nowhere else to report
            self.pg.message = f"{key}: {e}"
            self.update_status()

    def sync(self, changes):
        """Settings changed from code: move the widgets to match, without triggering set() again."""
        self._syncing = True
        try:
            for key, value in changes.items():
                w = self.controls[key]
                if key in SLIDER_CHOICES and value not in [v for _, v in w.options]:
                    w.options = choices(SLIDER_CHOICES[key], value)
                w.value = value
        finally:
            self._syncing = False
        self.update_controls()
        self.draw(stats=bool(changes.keys() & {"dropout", "dataset"}))

    def update_controls(self):
        off = inactive(self.pg.settings)
        for key, w in self.controls.items():
            w.disabled = key in off
        running = self.pg.running
        self.buttons["Play"].disabled = running
        self.buttons["Pause"].disabled = not running
        self.buttons["Step"].disabled = running
        self.update_status()

    def update_status(self):
        pg, last = self.pg, (self.pg.history[-1] if self.pg.history else None)
        lr = f"lr {pg.settings['lr']:g}"
        if pg.settings["lr_schedule"] != "constant":
            lr += _(" (now {lr:.3g})").format(lr=pg.optimizer.lr)
        parts = [_("epoch {n}").format(n=pg.epoch), _("step {n}").format(n=pg.steps), lr,
                 _("batch size {n}").format(n=pg.settings["batch_size"])]
        if last:
            parts += [_("training loss {loss:.3f}, accuracy {acc:.3f}").format(loss=last["train_loss"],
                                                                              acc=last["train_acc"]),
                      _("validation loss {loss:.3f}, accuracy {acc:.3f}").format(loss=last["val_loss"],
                                                                                acc=last["val_acc"])]
        text = " · ".join(parts) + ("" if not pg.message else f"<br><b style='color:#b00'>{pg.message}</b>")
        self.status.value = f"<span class='pg-status-text'>{text}</span>"

    def picture_png(self):
        pg = self.pg
        if pg.data["image_shape"] is not None:
            self.caption_text = templates_caption(pg.model, pg.data["image_shape"])
            png = templates_png(pg.model, pg.data["image_shape"])
        else:
            if self._boundary_data is not pg.data:
                self._boundary, self._boundary_data = BoundaryImage(pg.data), pg.data
            self.caption_text = label(BOUNDARY_CAPTION)
            png = self._boundary.render(pg.model)
        self.caption.value = html.escape(self.caption_text)
        return png

    def draw(self, stats=True):
        self.picture.value = self.picture_png()
        if stats:
            self.stats.value = self.stats_figure.render(self.pg)
        self.update_status()

    def export_png(self):
        """The boundary (or templates) and the curves side by side, as PNG bytes for a static copy.

        The picture's caption (what its colours mean) is written above it, so the file explains itself.
        """
        left = Image.open(io.BytesIO(captioned_png(self.picture.value, self.caption_text))).convert("RGB")
        right = Image.open(io.BytesIO(self.stats.value)).convert("RGB")
        canvas = Image.new("RGB", (left.width + right.width + 10, max(left.height, right.height)), "white")
        canvas.paste(left, (0, (canvas.height - left.height) // 2))
        canvas.paste(right, (left.width + 10, 0))
        buf = io.BytesIO()
        canvas.save(buf, format="png")
        return buf.getvalue()
