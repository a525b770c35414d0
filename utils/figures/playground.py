"""A playground: a small network from module.py trained live, every setting a widget.

    pg = Playground("spirals")     # or "circles", "xor", "gaussians", "fashion_mnist"
    pg                             # in a notebook: the controls and the figures
    pg.run(epochs=20)              # or press Play; pg.set(lr=0.1) as moving the slider does

Training runs as an asyncio task on the kernel's own event loop, one chunk of steps
(about 20 ms) at a time: between chunks the kernel handles widget messages, so a moved
slider takes effect at the next step, and no lock is needed because model, optimiser and
widgets are only ever touched from the kernel's one thread. Figures are PNG images built
with NumPy and PIL (the decision boundary, the first-layer templates) or with matplotlib
artists updated in place (curves and histograms); see utils/figures/playground_pictures.py.
"""
import asyncio
import time

import numpy as np
from IPython.display import display

from module import Dropout, Linear, SoftmaxCrossEntropy
from utils.core.models import mlp
from utils.core.optim import OPTIMIZERS, lr_schedule
from utils.core.train import TrainingDiverged, evaluate, train_step
from utils.figures.playground_pictures import shown_run_label
from utils.figures.playground_view import PlaygroundView
from utils.figures.toy_data import DATASETS, make_dataset
from utils.plumbing import paths
from utils.plumbing.config import check_value
from utils.plumbing.files import atomic_write
from utils.plumbing.fonts import label as figure_label
from utils.plumbing.language import _
from utils.plumbing.validate import check_choice, check_int, is_number

DEFAULTS = {
    "dataset": "spirals", "noise": 0.05, "val_share": 0.5, "seed": 0,        # data (and the initial weights)
    "hidden_layers": 2, "units": 8, "activation": "tanh", "dropout": 0.0,   # network
    "optimizer": "sgd", "lr": 0.1, "batch_size": 16, "l2_lambda": 0.0,     # training
    "momentum": 0.9, "nesterov": False, "beta1": 0.9, "beta2": 0.999,       # optimiser settings
    "lr_schedule": "constant", "decay_factor": 0.5, "decay_steps": 1000,
}
DATA_KEYS = {"dataset", "noise", "val_share", "seed"}
ARCHITECTURE_KEYS = {"hidden_layers", "units", "activation"}
OPTIMIZER_KEYS = {"momentum", "nesterov", "beta1", "beta2"}
SCHEDULE_KEYS = {"lr", "lr_schedule", "decay_factor", "decay_steps"}
# The settings a config file has too, checked by its schema (utils/plumbing/config.py): key -> table.
SCHEMA_KEYS = {"seed": "", "activation": "model", "dropout": "model",
               **{k: "train" for k in ("optimizer", "lr", "batch_size", "l2_lambda", "momentum", "nesterov",
                                       "lr_schedule", "decay_factor", "decay_steps")}}
# The rest: (low, high, what) of a number, as the widgets and the toy data allow; hidden layers and
# units as many as a config's hidden_sizes may list (mlp() also limits the weights they allocate).
RANGES = {"noise": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
          "val_share": (lambda v: 0 < v < 1, "a number in (0, 1)"),
          "beta1": (lambda v: 0 <= v < 1, "a number in [0, 1)"), "beta2": (lambda v: 0 <= v < 1, "a number in [0, 1)")}
INTEGERS = {"hidden_layers": (0, 20), "units": (1, 65536)}
MAX_RUN_EPOCHS = 10000
CHUNK_SECONDS = 0.02   # training work between two looks at the kernel's messages
FRAME_SECONDS = 0.06   # at most ~16 boundary redraws a second
STATS_SECONDS = 0.25   # curves and histograms: matplotlib is slower, so 4 a second


class Playground:
    """Train a small MLP on a small data set step by step; the widget front end is optional.

    settings: any keys of DEFAULTS. Public state: model, optimizer, data, history (one dict
    per epoch), runs (archived (label, history) pairs), steps, epoch, segments (the training
    settings of the current run and how many epochs each was used for, in order).
    """

    def __init__(self, dataset="spirals", ui=True, **settings):
        self.settings = dict(DEFAULTS)
        self.settings.update(self._check({**settings, "dataset": dataset}))
        self.runs, self.history, self.message = [], [], ""
        self._task, self.running = None, False
        self._load_data()
        self.reset(archive=False)
        self.view = None
        if ui:
            self.view = PlaygroundView(self)

    # ---- the core: one mini-batch step, epochs, metrics

    def step(self):
        """One mini-batch step; at the end of an epoch, evaluate and append to history.

        The same core as utils.core.train.train: forward, loss, backward, L2, optimiser step.
        Returns False (and pauses) if the loss diverged.
        """
        if self._pos == 0:
            self._order = self._rng.permutation(len(self.data["y_train"]))
            self._loss_sum, self._correct = 0.0, 0
            self.model.train()
        idx = self._order[self._pos:self._pos + self.settings["batch_size"]]
        X, y = self.data["X_train"][idx], self.data["y_train"][idx]
        self.optimizer.lr = self._schedule(self.steps)
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                loss, logits = train_step(self.model, self.loss_fn, X, y, self.optimizer, self.settings["l2_lambda"])
        except TrainingDiverged as e:
            self.message = _("diverged at step {step} ({error}): lower the learning rate, then press Reset").format(
                step=self.steps, error=e)
            self.running = False
            return False
        self.steps += 1
        self._loss_sum += loss * len(idx)
        self._correct += int((logits.argmax(axis=1) == y).sum())
        self._pos += len(idx)
        if self._pos >= len(self._order):
            with np.errstate(over="ignore", invalid="ignore"):  # a net about to diverge: reported by the loss
                self._end_epoch()
        return True

    def _end_epoch(self):
        n = len(self._order)
        self._pos, self.epoch = 0, self.epoch + 1
        val_loss, val_acc = evaluate(self.model, self.data["X_val"], self.data["y_val"])
        self.history.append({"epoch": self.epoch, "step": self.steps, "lr": self.optimizer.lr,
                             "train_loss": self._loss_sum / n, "train_acc": self._correct / n,
                             "val_loss": val_loss, "val_acc": val_acc})
        # evaluate() just ran the validation set through the net: its activations are cached.
        self.histograms = layer_histograms(self.model)
        settings = self._training_settings()
        if self.segments and self.segments[-1][0] == settings:
            self.segments[-1][1] += 1
        else:  # a setting changed since the last epoch: a new segment of the run
            self.segments.append([settings, 1])

    def run(self, epochs=1, draw=True):
        """Train for whole epochs, synchronously (the Step button, scripts and tests); returns the last row."""
        target = self.epoch + check_int("Playground.run: epochs", epochs, low=0, high=MAX_RUN_EPOCHS)
        while self.epoch < target and self.step():
            pass
        if draw and self.view is not None:
            self.view.draw(stats=True)
        return self.history[-1] if self.history else None

    # ---- background training on the kernel's event loop

    def play(self):
        """Start training in the background (as the Play button does); returns the asyncio task."""
        if self.running:
            return self._task
        self.running, self.message = True, ""
        self._task = asyncio.get_event_loop().create_task(self._loop())
        if self.view is not None:
            self.view.update_controls()
        return self._task

    def pause(self):
        self.running = False
        if self.view is not None:
            self.view.update_controls()

    async def _loop(self):
        next_frame = next_stats = 0.0
        try:
            while self.running:
                end = time.perf_counter() + CHUNK_SECONDS
                while self.running and time.perf_counter() < end:
                    self.step()
                now = time.perf_counter()
                if self.view is not None and (now >= next_frame or not self.running):
                    stats = now >= next_stats or not self.running
                    self.view.draw(stats=stats)
                    next_frame, next_stats = now + FRAME_SECONDS, now + STATS_SECONDS if stats else next_stats
                await asyncio.sleep(0)  # the kernel handles waiting messages (slider moves, Pause) here
        finally:
            self.running = False
            if self.view is not None:
                self.view.update_controls()

    # ---- settings

    def set(self, **changes):
        """Change settings as the widgets do: data or architecture resets the weights; the rest keeps them."""
        changes = {k: v for k, v in self._check(changes).items() if self.settings[k] != v}
        if not changes:
            return
        label = self.label(pending=False)  # the finished run's settings, before they change
        self.settings.update(changes)
        keys = changes.keys()
        if keys & DATA_KEYS:
            self._load_data()
        if keys & (DATA_KEYS | ARCHITECTURE_KEYS):
            self.reset(label=label)
        else:
            if "dropout" in keys:
                self._set_dropout()
            if "optimizer" in keys:
                self.optimizer = self._make_optimizer()  # fresh moments; the weights stay
            elif keys & OPTIMIZER_KEYS:
                self._configure_optimizer()
            if keys & SCHEDULE_KEYS:
                self._schedule = self._make_schedule()
        if self.view is not None:
            self.view.sync(changes)

    def _check(self, settings):
        """The settings in canonical form, each checked before anything changes; else a ValueError naming it."""
        unknown = set(settings) - DEFAULTS.keys()
        if unknown:
            raise ValueError(_("unknown playground setting(s) {unknown}; known: {known}").format(
                unknown=sorted(unknown), known=", ".join(DEFAULTS)))
        return {key: check_setting(key, value) for key, value in settings.items()}

    def _training_settings(self):
        """The settings that may change within a run, as (key, text) pairs: optimiser, lr, batch, L2, dropout."""
        s = self.settings
        opt = (f"sgd m={s['momentum']:g}" + (" nesterov" if s["nesterov"] and s["momentum"] else "")
               if s["optimizer"] == "sgd" else f"adam b1={s['beta1']:g} b2={s['beta2']:g}")
        lr = f"lr={s['lr']:g}" + ("" if s["lr_schedule"] == "constant" else f" ({s['lr_schedule']} decay)")
        return (("optimizer", opt), ("lr", lr), ("batch_size", f"bs={s['batch_size']}"),
                ("l2_lambda", f"L2={s['l2_lambda']:g}"), ("dropout", f"drop={s['dropout']:g}" if s["dropout"] else ""))

    def label(self, epochs=True, pending=True):
        """The run's settings in one line, for the legend of archived curves.

        A setting changed during the run shows each value it had, in order: "lr=0.1 (100 ep) →
        lr=0.01 (25 ep)" (epochs=False: without the counts). A value set but not yet trained
        with ends the label as "→ lr=0.01 (next)", unless pending=False (a finished run's label).
        """
        s = self.settings
        segments = [(dict(settings), n) for settings, n in self.segments]
        current = dict(self._training_settings())
        if not segments or (pending and segments[-1][0] != current):
            segments.append((current, None))
        # The settings that stayed the same go once at the front; those that changed, segment by segment.
        varying = [key for key in current if len({settings[key] for settings, _ in segments}) > 1]
        head = [s["dataset"], "-".join(map(str, self.sizes)), s["activation"],
                *(text for key, text in segments[0][0].items() if text and key not in varying)]
        parts = []
        for settings, n in segments if varying else ():
            text = " ".join(settings[key] or f"no {key}" for key in varying)
            parts.append(text + (" (next)" if n is None else f" ({n} ep)" if epochs else ""))
        return " ".join(head) + (": " + " → ".join(parts) if parts else "")

    def reset(self, archive=True, label=None):
        """New weights (seeded), a fresh optimiser and schedule; the finished run joins the overlay (as label)."""
        if archive and self.history:
            self.runs.append((label or self.label(pending=False), list(self.history)))
            del self.runs[:-8]  # the eight latest runs stay readable
        s = self.settings
        n_in, n_out = self.data["X_train"].shape[1], int(self.data["y_train"].max()) + 1
        self.sizes = [n_in] + [s["units"]] * s["hidden_layers"] + [n_out]
        init_rng = np.random.default_rng(s["seed"])
        self.model = mlp(self.sizes, s["activation"], rng=init_rng)
        self._dropout_rng = init_rng
        self._set_dropout()
        self.loss_fn = SoftmaxCrossEntropy()
        self.optimizer, self._schedule = self._make_optimizer(), self._make_schedule()
        self._rng = np.random.default_rng(s["seed"] + 1)  # shuffling, apart from the initialisation
        self.steps, self.epoch, self._pos, self.history, self.segments = 0, 0, 0, [], []
        self.model.predict_proba(self.data["X_val"][:1000])  # the initial activations, for the histograms
        self.histograms = layer_histograms(self.model)
        self.message = ""
        if getattr(self, "view", None) is not None:
            self.view.draw(stats=True)

    def clear_runs(self):
        self.runs = []
        if self.view is not None:
            self.view.draw(stats=True)

    def _load_data(self):
        s = self.settings
        self.data = make_dataset(s["dataset"], noise=s["noise"], val_share=s["val_share"], rng=s["seed"])

    def _set_dropout(self):
        """Dropout layers after each activation (or none), around the same Linear layers: weights kept."""
        p = self.settings["dropout"]
        layers = [layer for layer in self.model.layers if not isinstance(layer, Dropout)]
        self.model.layers = []
        for i, layer in enumerate(layers):
            self.model.layers.append(layer)
            if p > 0 and not isinstance(layer, Linear) and i < len(layers) - 1:
                self.model.layers.append(Dropout(p, rng=self._dropout_rng))

    def _make_optimizer(self):
        s = self.settings
        optimizer = OPTIMIZERS[s["optimizer"]](s["lr"])
        self.optimizer = optimizer
        self._configure_optimizer()
        return optimizer

    def _configure_optimizer(self):
        """Optimiser settings changed in place: the velocity or the moments are kept."""
        s, opt = self.settings, self.optimizer
        if s["optimizer"] == "sgd":
            opt.momentum, opt.nesterov = float(s["momentum"]), bool(s["nesterov"]) and s["momentum"] > 0
        else:
            opt.beta1, opt.beta2 = float(s["beta1"]), float(s["beta2"])

    def _make_schedule(self):
        s = self.settings
        # The cosine schedule reaches 0 after decay_steps steps (there is no fixed end to a playground run).
        return lr_schedule(s["lr"], s["lr_schedule"], s["decay_factor"], s["decay_steps"],
                           total_steps=s["decay_steps"])

    # ---- display

    @property
    def controls(self):
        """The widgets by setting name (e.g. pg.controls["lr"]); the buttons are pg.view.buttons."""
        return self.view.controls

    def save_png(self, name):
        """Write the current picture and curves side by side to static/name, for readers on GitHub
        (NN_STATIC_DIR moves the folder)."""
        self.view.draw(stats=True)
        path = paths.static_dir() / name
        with atomic_write(path) as f:
            f.write(self.view.export_png())
        return path

    def _ipython_display_(self):
        display(self.view.widget if self.view is not None else repr(self))

    def __repr__(self):
        last = self.history[-1] if self.history else {}
        return f"Playground({self.label()}, epoch {self.epoch}" + (
            f", val_acc {last['val_acc']:.3f})" if last else ")")

    def earlier_runs(self):
        """The archived runs' labels in one printable line: "earlier runs: ['spirals 2-8-8-2 ...']"
        (print(pg.earlier_runs()) prints what print("earlier runs:", [label for label, _ in pg.runs]) does)."""
        return _("earlier runs: {labels}").format(labels=[shown_run_label(label, printed=True)
                                                          for label, _history in self.runs])

    def summary(self):
        """The last epoch's numbers, rounded for a stable printout."""
        if not self.history:
            return _("{label}: not trained yet").format(label=shown_run_label(self.label(), printed=True))
        h = self.history[-1]
        return _("epoch {epoch} (step {step}): train loss {train_loss:.3f} acc {train_acc:.3f}, "
                 "validation loss {val_loss:.3f} acc {val_acc:.3f}").format(**h)


def check_setting(key, value):
    """One playground setting in canonical form: by the config schema where a config has the same key,
    else by the ranges above. Raises ValueError (ConfigError for the schema's) naming key, value and range."""
    if key in SCHEMA_KEYS:
        return check_value(SCHEMA_KEYS[key], key, value, where="Playground")
    if key == "dataset":
        return check_choice("Playground: dataset", value, DATASETS)
    if key in INTEGERS:
        return check_int(f"Playground: {key}", value, *INTEGERS[key])
    within, expected = RANGES[key]
    if not is_number(value) or not within(value):
        raise ValueError(_("Playground: {key} = {value}: expected {expected}").format(
            key=key, value=repr(value), expected=expected_range(expected)))
    return float(value)


def expected_range(text):
    """A range of RANGES ("a number in [0, 1]") in the reader's language."""
    return {"a number in [0, 1]": _("a number in [0, 1]"), "a number in (0, 1)": _("a number in (0, 1)"),
            "a number in [0, 1)": _("a number in [0, 1)")}.get(text, text)


ACTIVATION_RANGES = {"Tanh": (-1.0, 1.0), "Sigmoid": (0.0, 1.0)}  # else (-0.5, 4): the ReLU family


def layer_histograms(model, bins=30):
    """Histograms of each hidden activation layer's cached output and each Linear layer's dW.

    Returns {"activations": [(name, edges, shares)], "gradients": [(name, edges, shares)],
    "clipped": (low, high) or None}; gradients as log10 |dW| (their sizes span decades). Activations
    of the ReLU family are counted on (-0.5, 4), the values beyond in the end bins: "clipped" says so.
    """
    acts, grads, clipped = [], [], None
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Linear):
            g = np.log10(np.abs(layer.grads["W"]).ravel() + 1e-12)
            counts, edges = np.histogram(g, bins=bins, range=(-8, 0))
            grads.append((figure_label("layer {i} dW").format(i=i), edges, counts / max(g.size, 1)))
        elif not isinstance(layer, Dropout) and layer.out is not None:
            # Fixed ranges (values beyond go to the end bins), so the axes need not move.
            lo, hi = ACTIVATION_RANGES.get(type(layer).__name__, (-0.5, 4.0))
            if type(layer).__name__ not in ACTIVATION_RANGES:  # unbounded: the end bins hold the values beyond
                clipped = (lo, hi)
            out = np.clip(layer.out.ravel(), lo, hi)
            counts, edges = np.histogram(out, bins=bins, range=(lo, hi))
            acts.append((figure_label("layer {i} {kind}").format(i=i, kind=type(layer).__name__), edges,
                         counts / max(out.size, 1)))
    return {"activations": acts, "gradients": grads, "clipped": clipped}
