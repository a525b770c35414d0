"""The playground's pictures, as PNG bytes: the decision boundary, the first-layer templates,
the curves and histograms (utils/figures/playground_view.py holds the widgets around them).

Fast redraw: the decision boundary and the first-layer templates are arrays coloured through
a lookup table and encoded by PIL (a few ms); curves and histograms are one matplotlib
figure whose lines are updated in place (set_data), rendered by Agg at most 4 times a second.
What a colour means is said in the PNG itself (captioned), so a saved copy explains itself.
"""
import io
import re
import textwrap

import numpy as np
from matplotlib import colormaps, font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from module import Linear
from utils.plumbing.fonts import chinese_font, label
from utils.plumbing.language import _, language


def _lut(name, lighten=0.0):
    lut = (colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.float32)
    return (255 - (255 - lut) * (1 - lighten)).astype(np.uint8)


BOUNDARY_LUT, WEIGHT_LUT = _lut("RdBu", lighten=0.45), _lut("RdBu_r")
POINT_COLOURS = np.array([[165, 0, 38], [49, 54, 149]], dtype=np.uint8)  # the LUT's two ends, darkened
# What the colours mean, beside the picture in the widget and written into a saved PNG.
BOUNDARY_CAPTION = ("P(class 1): red = class 0, blue = class 1; filled squares: training points, "
                    "hollow squares: validation points")
TEMPLATES_CAPTION = ("First-layer weights of the first {k} units, one {h}x{w} template each, each unit scaled to "
                     "its own max |w| (no common scale). Red: the unit's output rises when this pixel is brighter "
                     "than the training pixels' mean; blue: when it is darker.")


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


def templates_caption(model, image_shape=(28, 28), max_units=32):
    """TEMPLATES_CAPTION filled in for the templates templates_png draws of this model."""
    W = next(layer for layer in model.layers if isinstance(layer, Linear)).params["W"]
    h, w = image_shape
    return label(TEMPLATES_CAPTION).format(k=min(W.shape[1], max_units), h=h, w=w)


def templates_png(model, image_shape=(28, 28), max_units=32, cols=8, scale=2):
    """The first Linear layer's weights, one image per unit (red positive, blue negative): PNG bytes.

    Each unit is scaled to its own max |w| (a unit with small weights would be blank on a common
    scale); templates_caption says so in words.
    """
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


CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def caption_font(text, size):
    """(PIL font, mean character width in em) for text: PIL's default font, or for Chinese text the CJK font
    matplotlib uses (PIL's default has no Chinese glyphs), if one is installed."""
    family = chinese_font() if CJK.search(text) and language() != "en" else None
    if family is not None:
        path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        faces = []
        for index in range(16):  # a .ttc collection holds several faces (JP, KR, SC, ...): the one matplotlib uses
            try:
                faces.append(ImageFont.truetype(path, size, index=index))
            except OSError:
                break
            if faces[-1].getname()[0] == family:
                return faces[-1], 1.0  # CJK characters are 1 em wide
        if faces:
            return faces[0], 1.0
    return ImageFont.load_default(size=size), 0.55  # the default font's mean character width is about 0.55 em


def wrap_to_width(text, font, width):
    """text in lines no wider than width pixels in font, broken between characters (Chinese) but not inside
    a run of Latin letters, digits and symbols such as P(class 1) or 28x28."""
    lines, line = [], ""
    for token in re.findall(r"[\w.()|=<>+\-/]+|.", text, flags=re.ASCII):
        if line and font.getlength(line + token) > width:
            lines.append(line.rstrip())
            line = token.lstrip()
        else:
            line += token
    return [*lines, line.rstrip()] if line.strip() else lines


def captioned_png(png, caption, width=None, size=12):
    """The PNG bytes png with caption written above it (wrapped to width pixels, default the image's): PNG bytes."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    width = width or image.width
    font, em = caption_font(caption, size)
    if em == 1.0:  # Chinese: no spaces to break at, so lines are filled to the width the font measures
        lines = [line for part in caption.split("\n") for line in wrap_to_width(part, font, width - 4)]
    else:
        chars = max(10, int(width / (em * size)))
        lines = [line for part in caption.split("\n") for line in textwrap.wrap(part, chars)]
    top = (size + 3) * len(lines) + 6
    canvas = Image.new("RGB", (max(width, image.width), top + image.height), "white")
    draw = ImageDraw.Draw(canvas)
    for j, line in enumerate(lines):
        draw.text((2, 3 + j * (size + 3)), line, fill=(0, 0, 0), font=font)
    canvas.paste(image, (0, top))
    buf = io.BytesIO()
    canvas.save(buf, format="png")
    return buf.getvalue()


NICE = [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 20, 50, 100, 1e3, 1e4, 1e6, 1e9]


def _wrap(text):
    """A run's label for a legend: each change of setting (" → ") on a line of its own."""
    return text.replace(" → ", "\n    → ")


def shown_run_label(text, printed=False):
    """A Playground.label() (English, as code compares and stores it) in the reader's language: the data
    set's name, "(25 ep)", "(next)", "(step decay)" and "no dropout"; the settings (lr=0.1) stay as they
    are. For a legend (as label(): English where the figure cannot draw Chinese), or printed=True for a line
    of text."""
    if language() == "en" or (not printed and chinese_font() is None):
        return text
    names = {"spirals": _("spirals"), "circles": _("circles"), "xor": _("xor"), "gaussians": _("gaussians"),
             "fashion_mnist": _("fashion_mnist"), "(step decay)": _("(step decay)"),
             "(exponential decay)": _("(exponential decay)"), "(cosine decay)": _("(cosine decay)"),
             "no dropout": _("no dropout"), "(next)": _("(next)")}
    head, space, rest = text.partition(" ")
    text = (names.get(head, head) + space + rest).replace(": ", "：", 1)  # the settings' colon, full-width
    # The space before an English bracket goes: the Chinese brackets are full-width.
    text = re.sub(r" ?\((\d+) ep\)", lambda m: _("({n} ep)").format(n=m.group(1)), text)
    return re.sub(r" ?(\((?:step|exponential|cosine) decay\)|\(next\))|no dropout",
                  lambda m: names[m.group(1) or m.group(0)], text)


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
        self.fig.subplots_adjust(left=0.08, right=0.98, top=0.94, bottom=0.1, hspace=0.45, wspace=0.25)
        self.ax_loss, self.ax_acc, self.ax_act, self.ax_grad = axes.ravel()
        # The playground's loss is the cross-entropy of the batches; the L2 term is not in it.
        titles = (label("cross-entropy, no L2 term (solid: training, dashed: validation)"),
                  label("accuracy (solid: training, dashed: validation)"),
                  label("hidden activations (validation set)"), label("log10 |dW| (last step)"))
        ylabels = (label("loss"), label("accuracy"), label("share of unit outputs"), label("share of weights"))
        for ax, title, ylabel in zip(axes.ravel(), titles, ylabels):
            ax.set_title(title, fontsize=9)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_locator(MaxNLocator(4))
        self.ax_loss.set_xlabel(label("epoch"), fontsize=8)
        self.ax_acc.set_xlabel(label("epoch"), fontsize=8)
        self.ax_act.set_xlabel(label("activation value"), fontsize=8)
        self.ax_grad.set_xlabel("log10 |dW|", fontsize=8)
        self.ax_acc.set_ylim(0, 1)  # always 0 to 1: two playgrounds' figures compare at a glance
        self.ax_grad.set_xlim(-8, 0)
        self.current = {k: ax.plot([], [], color="k", lw=1.8, ls=ls, animated=True)[0]
                        for k, ax, ls in (("train_loss", self.ax_loss, "-"), ("val_loss", self.ax_loss, "--"),
                                          ("train_acc", self.ax_acc, "-"), ("val_acc", self.ax_acc, "--"))}
        self._key, self._background, self._run_lines, self._hist_lines = None, None, [], {}

    def _draw_runs(self, runs, run):
        for line in self._run_lines:
            line.remove()
        self._run_lines = []
        for j, (run_label, history) in enumerate(runs):
            colour = f"C{j % 10}"
            epochs = [h["epoch"] for h in history]
            for k, ax, ls in (("train_loss", self.ax_loss, "-"), ("val_loss", self.ax_loss, "--"),
                              ("train_acc", self.ax_acc, "-"), ("val_acc", self.ax_acc, "--")):
                self._run_lines += ax.plot(epochs, [h[k] for h in history], color=colour, lw=1, ls=ls, alpha=0.7,
                                           label=_wrap(shown_run_label(run_label)) if k == "train_loss" else None)
        self.current["train_loss"].set_label(_wrap(label("now: {label}").format(label=shown_run_label(run))))
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

    def _mark_clipped(self, clipped):
        """Say on the activation axis that its end bins hold every value beyond the range (clipped)."""
        if clipped is None:
            self.ax_act.set_xlabel(label("activation value"), fontsize=8)
            self.ax_act.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            return
        lo, hi = clipped
        self.ax_act.set_xlabel(label("activation value (end bins: all values <= {lo:g} and >= {hi:g}, clipped)")
                               .format(lo=lo, hi=hi), fontsize=8)
        self.ax_act.xaxis.set_major_formatter(FuncFormatter(
            lambda v, _: f"≥ {v:g}" if np.isclose(v, hi) else f"≤ {v:g}" if np.isclose(v, lo) else f"{v:g}"))

    def _limits(self, pg, runs_data):
        """Axis limits that hold all the data: grown in steps, so they rarely change."""
        histories = [pg.history] + [h for _, h in runs_data]
        rows = [r for h in histories for r in h]
        epochs = max([r["epoch"] for r in rows], default=1)
        xmax = 25 * 4 ** max(0, int(np.ceil(np.log(max(epochs, 1) / 25) / np.log(4))))  # 25, 100, 400, ...
        chance = 1 / pg.sizes[-1]  # before the first epoch: the loss and accuracy of a uniform guess
        losses = [r[k] for r in rows for k in ("train_loss", "val_loss") if np.isfinite(r[k])] or [-np.log(chance)]
        act = pg.histograms.get("activations", [])
        act_lo = min((e[0] for _, e, _ in act), default=-1)
        act_hi = max((e[-1] for _, e, _ in act), default=1)
        shares = [sh.max() for key in ("activations", "gradients") for _, _, sh in pg.histograms.get(key, [])]
        share_hi = next((v for v in (0.25, 0.5) if v >= max(shares, default=0)), 1.0)
        return (xmax, _nice_above(max(losses) * 1.2), float(act_lo), float(act_hi), share_hi)

    def render(self, pg):
        h = pg.history
        epochs = [r["epoch"] for r in h]
        for k, line in self.current.items():
            line.set_data(epochs, [r[k] for r in h])
        hist_lines = []
        for ax, key in ((self.ax_act, "activations"), (self.ax_grad, "gradients")):
            entries = pg.histograms.get(key, [])
            lines = self._histogram_lines(ax, tuple(name for name, _, _ in entries))
            for line, (_name, edges, shares) in zip(lines, entries):
                line.set_data((edges[:-1] + edges[1:]) / 2, shares)
            hist_lines += lines
        limits = self._limits(pg, pg.runs)
        runs_key = (tuple(id(r) for r in pg.runs), pg.label(epochs=False), tuple(self._hist_lines.get(a, ((),))[0]
                                                                      for a in (self.ax_act, self.ax_grad)))
        old = self._key
        if old is not None and old[0] == runs_key:  # the same run: limits only grow
            limits = tuple(min(a, b) if i == 2 else max(a, b) for i, (a, b) in enumerate(zip(limits, old[1])))
        grow = old is None or old[0] != runs_key or limits != old[1]
        if grow:  # draw everything but the moving lines, and keep that as the background
            if old is None or old[0][0] != runs_key[0] or old[0][1] != runs_key[1]:
                self._draw_runs(pg.runs, pg.label(epochs=False))
            xmax, loss_hi, act_lo, act_hi, share_hi = limits
            self.ax_loss.set(xlim=(0, xmax), ylim=(0, loss_hi))
            self.ax_acc.set_xlim(0, xmax)
            self.ax_act.set(xlim=(act_lo, act_hi), ylim=(0, share_hi))
            self._mark_clipped(pg.histograms.get("clipped"))
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
