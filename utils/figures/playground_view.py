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

ACTIVATION_NAMES = ["relu", "leaky_relu", "tanh", "sigmoid"]
SLIDER_CHOICES = {
    "units": [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 32, 64, 128, 256],
    "lr": [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
    "batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256],
    "l2_lambda": [0.0, 1e-5, 1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1],
    "beta2": [0.9, 0.99, 0.999, 0.9999],
    "decay_steps": [100, 200, 500, 1000, 2000, 5000, 10000],
}
# key: (widget class, description, options)
CONTROLS = {
    "dataset": (widgets.Dropdown, "data set", {"options": list(DATASETS)}),
    "noise": (widgets.FloatSlider, "noise", {"min": 0, "max": 0.5, "step": 0.05}),
    "val_share": (widgets.FloatSlider, "validation share", {"min": 0.1, "max": 0.9, "step": 0.1}),
    "seed": (widgets.IntSlider, "seed", {"min": 0, "max": 20}),
    "hidden_layers": (widgets.IntSlider, "hidden layers", {"min": 0, "max": 4}),
    "units": (widgets.SelectionSlider, "units per layer", {}),
    "activation": (widgets.Dropdown, "activation", {"options": ACTIVATION_NAMES}),
    "dropout": (widgets.FloatSlider, "dropout", {"min": 0, "max": 0.8, "step": 0.05}),
    "optimizer": (widgets.Dropdown, "optimiser", {"options": ["sgd", "adam"]}),
    "lr": (widgets.SelectionSlider, "learning rate", {}),
    "batch_size": (widgets.SelectionSlider, "batch size", {}),
    "l2_lambda": (widgets.SelectionSlider, "L2 lambda", {}),
    "momentum": (widgets.FloatSlider, "momentum (SGD)", {"min": 0, "max": 0.99, "step": 0.01}),
    "nesterov": (widgets.Checkbox, "Nesterov (SGD)", {"indent": False}),
    "beta1": (widgets.FloatSlider, "beta1 (Adam)", {"min": 0, "max": 0.99, "step": 0.01}),
    "beta2": (widgets.SelectionSlider, "beta2 (Adam)", {}),
    "lr_schedule": (widgets.Dropdown, "lr schedule", {"options": ["constant", "step", "exponential", "cosine"]}),
    "decay_factor": (widgets.FloatSlider, "decay factor", {"min": 0.05, "max": 1, "step": 0.05}),
    "decay_steps": (widgets.SelectionSlider, "decay steps", {}),
}
GROUPS = {"Data": ["dataset", "noise", "val_share", "seed"],
          "Network": ["hidden_layers", "units", "activation", "dropout"],
          "Training": ["optimizer", "lr", "batch_size", "l2_lambda", "momentum", "nesterov", "beta1", "beta2",
                       "lr_schedule", "decay_factor", "decay_steps"]}


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
        for key, (kind, description, options) in CONTROLS.items():
            if key in SLIDER_CHOICES:
                options = {"options": choices(SLIDER_CHOICES[key], pg.settings[key])}
            if kind is widgets.Checkbox:
                w = kind(value=pg.settings[key], description=description, **options)
            else:  # sliders send their value when released, not at every pixel of a drag
                extra = {} if kind is widgets.Dropdown else {"continuous_update": False}
                w = kind(value=pg.settings[key], description=description, style={"description_width": "120px"},
                         layout=widgets.Layout(width="370px"), **extra, **options)
            w.observe(self._on_change, "value")
            self.controls[key] = w
        self.buttons = {name: widgets.Button(description=name, icon=icon, layout=widgets.Layout(width="80px"))
                        for name, icon in (("Play", "play"), ("Pause", "pause"), ("Step", "step-forward"),
                                           ("Reset", "undo"), ("Clear runs", "eraser"))}
        self.buttons["Clear runs"].layout.width = "110px"
        self.buttons["Step"].tooltip = "train one epoch"
        for name, action in (("Play", pg.play), ("Pause", pg.pause), ("Step", lambda: pg.run(epochs=1)),
                             ("Reset", pg.reset), ("Clear runs", pg.clear_runs)):
            self.buttons[name].on_click(lambda _, action=action: action())
        self.status = widgets.HTML()
        self.caption = widgets.HTML(layout=widgets.Layout(width="240px"))
        self.picture = widgets.Image(format="png", layout=widgets.Layout(width="240px", min_width="240px"))
        self.stats = widgets.Image(format="png", layout=widgets.Layout(min_width="620px"))
        self.stats_figure, self._boundary, self._boundary_data = StatsFigure(), None, None
        panels = [widgets.VBox([widgets.HTML(f"<b>{title}</b>"), *(self.controls[k] for k in keys)])
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
            lr += f" (now {pg.optimizer.lr:.3g})"
        parts = [f"epoch {pg.epoch}", f"step {pg.steps}", lr,
                 f"batch size {pg.settings['batch_size']}"]
        if last:
            parts += [f"training loss {last['train_loss']:.3f}, accuracy {last['train_acc']:.3f}",
                      f"validation loss {last['val_loss']:.3f}, accuracy {last['val_acc']:.3f}"]
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
            self.caption_text = BOUNDARY_CAPTION
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
