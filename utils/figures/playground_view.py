"""The playground's widgets and figures (utils/figures/playground.py holds the training).

Fast redraw: the decision boundary and the first-layer templates are arrays coloured through
a lookup table and encoded by PIL (a few ms); curves and histograms are one matplotlib
figure whose lines are updated in place (set_data), rendered by Agg at most 4 times a second.
"""
import io

import ipywidgets as widgets
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from module import Linear
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


def _lut(name, lighten=0.0):
    lut = (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    return (255 - (255 - lut) * (1 - lighten)).astype(np.uint8)


BOUNDARY_LUT, WEIGHT_LUT = _lut("RdBu", lighten=0.45), _lut("RdBu_r")
POINT_COLOURS = np.array([[165, 0, 38], [49, 54, 149]], dtype=np.uint8)  # the LUT's two ends, darkened


def _png(rgb):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="png", compress_level=1)  # level 1: 3x faster, files ~20% larger
    return buf.getvalue()


class BoundaryImage:
    """P(class 1) on a grid over the 2-D data as colour, with the points on top: PNG bytes."""

    def __init__(self, data, grid=80, scale=3):
        X = np.concatenate([data["X_train"], data["X_val"]])
        lo, hi = X.min(axis=0), X.max(axis=0)
        lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
        xs, ys = np.linspace(lo[0], hi[0], grid), np.linspace(hi[1], lo[1], grid)  # row 0 at the top
        gx, gy = np.meshgrid(xs, ys)
        self.grid_points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
        self.grid, self.scale, self.size = grid, scale, grid * scale
        self.points = []
        for X, y, hollow in ((data["X_train"], data["y_train"], False), (data["X_val"], data["y_val"], True)):
            px = np.round((X[:, 0] - lo[0]) / (hi[0] - lo[0]) * (self.size - 1)).astype(int)
            py = np.round((hi[1] - X[:, 1]) / (hi[1] - lo[1]) * (self.size - 1)).astype(int)
            self.points.append((px, py, y, hollow))

    def render(self, model):
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged net: NaN shows as "unsure"
            p = model.predict_proba(self.grid_points)[:, 1]
        idx = (np.nan_to_num(p, nan=0.5) * 255).astype(np.uint8)
        img = BOUNDARY_LUT[idx].reshape(self.grid, self.grid, 3)
        img = img.repeat(self.scale, axis=0).repeat(self.scale, axis=1)
        last = self.size - 1
        for px, py, y, hollow in self.points:
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    edge = max(abs(dx), abs(dy)) == 2
                    colour = POINT_COLOURS[y] if (edge or not hollow) else 255
                    img[np.clip(py + dy, 0, last), np.clip(px + dx, 0, last)] = colour
        return _png(img)


def templates_png(model, image_shape=(28, 28), max_units=32, cols=8, scale=2):
    """The first Linear layer's weights, one image per unit (red positive, blue negative): PNG bytes."""
    W = next(layer for layer in model.layers if isinstance(layer, Linear)).params["W"]
    k = min(W.shape[1], max_units)
    cols = min(cols, k)
    rows = -(-k // cols)
    h, w = image_shape
    tiles = W[:, :k].T.reshape(k, h, w)
    tiles = tiles / (np.abs(tiles).max(axis=(1, 2), keepdims=True) + 1e-12)  # each unit on its own scale
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, 3), 255, dtype=np.uint8)
    for i in range(k):
        r, c = divmod(i, cols)
        idx = np.nan_to_num((tiles[i] + 1) * 127.5, nan=127.5).astype(np.uint8)
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = WEIGHT_LUT[idx]
    return _png(canvas.repeat(scale, axis=0).repeat(scale, axis=1))


NICE = [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 20, 50, 100, 1e3, 1e4, 1e6, 1e9]


def _nice_above(x):
    return next((v for v in NICE if v >= x), x)


class StatsFigure:
    """Loss and accuracy curves (this run and the archived ones) and per-layer histograms, as PNG.

    Axis limits only grow, in steps (epochs 25, 100, 400, ...), so most frames keep the axes:
    then the saved background (axes, ticks, archived runs) is restored and only the moving
    lines are drawn on it (blitting), about 20x faster than drawing the whole figure.
    """

    def __init__(self):
        self.fig = Figure(figsize=(8.6, 5.0), dpi=72)
        FigureCanvasAgg(self.fig)
        axes = self.fig.subplots(2, 2)
        self.fig.subplots_adjust(left=0.08, right=0.98, top=0.94, bottom=0.09, hspace=0.38, wspace=0.22)
        self.ax_loss, self.ax_acc, self.ax_act, self.ax_grad = axes.ravel()
        for ax, title in zip(axes.ravel(), ("loss (solid: training, dashed: validation)", "accuracy",
                                             "hidden activations (validation set)", "log10 |dW| (last step)")):
            ax.set_title(title, fontsize=10)
            ax.tick_params(labelsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_locator(MaxNLocator(4))
        self.ax_loss.set_xlabel("epoch", fontsize=8)
        self.ax_acc.set_xlabel("epoch", fontsize=8)
        self.ax_grad.set_xlim(-8, 0)
        self.current = {k: ax.plot([], [], color="k", lw=1.8, ls=ls, animated=True)[0]
                        for k, ax, ls in (("train_loss", self.ax_loss, "-"), ("val_loss", self.ax_loss, "--"),
                                          ("train_acc", self.ax_acc, "-"), ("val_acc", self.ax_acc, "--"))}
        self._key, self._background, self._run_lines, self._hist_lines = None, None, [], {}

    def _draw_runs(self, runs, label):
        for line in self._run_lines:
            line.remove()
        self._run_lines = []
        for j, (run_label, history) in enumerate(runs):
            colour = f"C{j % 10}"
            epochs = [h["epoch"] for h in history]
            for k, ax, ls in (("train_loss", self.ax_loss, "-"), ("val_loss", self.ax_loss, "--"),
                              ("train_acc", self.ax_acc, "-"), ("val_acc", self.ax_acc, "--")):
                self._run_lines += ax.plot(epochs, [h[k] for h in history], color=colour, lw=1, ls=ls, alpha=0.7,
                                           label=run_label if k == "train_loss" else None)
        self.current["train_loss"].set_label(f"now: {label}")
        self.ax_loss.legend(fontsize=7, loc="upper right")

    def _histogram_lines(self, ax, names):
        old_names, old_lines = self._hist_lines.get(ax, ((), []))
        if old_names == names:
            return old_lines
        for line in old_lines:
            line.remove()
        lines = [ax.plot([], [], lw=1.2, color=f"C{j}", drawstyle="steps-mid", label=name, animated=True)[0]
                 for j, name in enumerate(names)]
        self._hist_lines[ax] = (names, lines)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        if names:
            ax.legend(fontsize=7, loc="upper right")
        return lines

    def _limits(self, pg, runs_data):
        """Axis limits that hold all the data: grown in steps, so they rarely change."""
        histories = [pg.history] + [h for _, h in runs_data]
        rows = [r for h in histories for r in h]
        epochs = max([r["epoch"] for r in rows], default=1)
        xmax = 25 * 4 ** max(0, int(np.ceil(np.log(max(epochs, 1) / 25) / np.log(4))))  # 25, 100, 400, ...
        chance = 1 / pg.sizes[-1]  # before the first epoch: the loss and accuracy of a uniform guess
        losses = [r[k] for r in rows for k in ("train_loss", "val_loss") if np.isfinite(r[k])] or [-np.log(chance)]
        accs = [r[k] for r in rows for k in ("train_acc", "val_acc")] or [chance * 0.8]
        acc_lo = min(0.9, np.floor(min(accs) * 10) / 10)
        act = pg.histograms.get("activations", [])
        act_lo = min((e[0] for _, e, _ in act), default=-1)
        act_hi = max((e[-1] for _, e, _ in act), default=1)
        shares = [sh.max() for key in ("activations", "gradients") for _, _, sh in pg.histograms.get(key, [])]
        share_hi = next((v for v in (0.25, 0.5) if v >= max(shares, default=0)), 1.0)
        return (xmax, _nice_above(max(losses) * 1.2), acc_lo, float(act_lo), float(act_hi), share_hi)

    def render(self, pg):
        h = pg.history
        epochs = [r["epoch"] for r in h]
        for k, line in self.current.items():
            line.set_data(epochs, [r[k] for r in h])
        hist_lines = []
        for ax, key in ((self.ax_act, "activations"), (self.ax_grad, "gradients")):
            entries = pg.histograms.get(key, [])
            lines = self._histogram_lines(ax, tuple(name for name, _, _ in entries))
            for line, (_, edges, shares) in zip(lines, entries):
                line.set_data((edges[:-1] + edges[1:]) / 2, shares)
            hist_lines += lines
        limits = self._limits(pg, pg.runs)
        runs_key = (tuple(id(r) for r in pg.runs), pg.label(), tuple(self._hist_lines.get(a, ((),))[0]
                                                                      for a in (self.ax_act, self.ax_grad)))
        old = self._key
        if old is not None and old[0] == runs_key:  # the same run: limits only grow
            limits = tuple(min(a, b) if i in (2, 3) else max(a, b) for i, (a, b) in enumerate(zip(limits, old[1])))
        grow = old is None or old[0] != runs_key or limits != old[1]
        if grow:  # draw everything but the moving lines, and keep that as the background
            if old is None or old[0][0] != runs_key[0] or old[0][1] != runs_key[1]:
                self._draw_runs(pg.runs, pg.label())
            xmax, loss_hi, acc_lo, act_lo, act_hi, share_hi = limits
            self.ax_loss.set(xlim=(0, xmax), ylim=(0, loss_hi))
            self.ax_acc.set(xlim=(0, xmax), ylim=(acc_lo, 1.0))
            self.ax_act.set(xlim=(act_lo, act_hi), ylim=(0, share_hi))
            self.ax_grad.set_ylim(0, share_hi)
            self.fig.canvas.draw()
            self._background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
            self._key = (runs_key, limits)
        else:
            self.fig.canvas.restore_region(self._background)
        for line in [*self.current.values(), *hist_lines]:
            line.axes.draw_artist(line)
        rgba = np.asarray(self.fig.canvas.buffer_rgba())
        return _png(np.ascontiguousarray(rgba[:, :, :3]))


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
            self.caption.value = "First-layer weights of the first 32 units, one 28x28 template each (red +, blue -)"
            return templates_png(pg.model, pg.data["image_shape"])
        if self._boundary_data is not pg.data:
            self._boundary, self._boundary_data = BoundaryImage(pg.data), pg.data
        self.caption.value = "P(class 1): red 0, blue 1; dots training, rings validation"
        return self._boundary.render(pg.model)

    def draw(self, stats=True):
        self.picture.value = self.picture_png()
        if stats:
            self.stats.value = self.stats_figure.render(self.pg)
        self.update_status()

    def export_png(self):
        """The boundary (or templates) and the curves side by side, as PNG bytes for a static copy."""
        left = Image.open(io.BytesIO(self.picture.value)).convert("RGB")
        right = Image.open(io.BytesIO(self.stats.value)).convert("RGB")
        canvas = Image.new("RGB", (left.width + right.width + 10, max(left.height, right.height)), "white")
        canvas.paste(left, (0, (canvas.height - left.height) // 2))
        canvas.paste(right, (left.width + 10, 0))
        buf = io.BytesIO()
        canvas.save(buf, format="png")
        return buf.getvalue()
