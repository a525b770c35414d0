"""Signals that tell why a network does or does not learn, read from the layers' cached state.

* ``activation_stats(model, X)``: per activation layer, the share of saturated activations
  and of dead units (flat for every input), after one forward pass;
* ``TrainingMonitor``: a ``train(..., callback=...)`` callback that records, after every
  epoch, a sample of each weight matrix (for histograms), the update-to-weight ratio
  ||W_e - W_(e-1)|| / ||W_(e-1)|| and the activation stats on a fixed probe batch;
* ``diagnose(model, X, y, history=None)``: the doctor, "why doesn't my network learn?", a
  ranked list of findings (what was measured, why it matters, the fix); the findings and the
  checks for common student bugs are in utils.teaching.findings. Their texts are English inside (the
  ranking matches English words), shown in the reader's language (findings._ makes such a Text).
"""
import copy

import numpy as np
import pandas as pd

from module import Activation, LeakyReLU, ReLU, SoftmaxCrossEntropy
from utils.core.models import ACTIVATIONS, evaluating, from_config, linear_layers
from utils.core.optim import SGD, Adam
from utils.teaching.findings import (
    Diagnosis,
    Finding,
    _,
    check_label_order,
    check_overlap,
    check_plateau,
    check_train_mode,
    mark_consequences,
)

__all__ = ["FLAT", "DOCTOR", "Diagnosis", "Finding", "TrainingMonitor", "activation_stats", "diagnose",
           "relative_slope", "update_ratios"]

# A unit is "flat" where its local derivative is below this share of the activation's
# largest derivative: |tanh| > 0.97 (Karpathy's rule of thumb), sigmoid < 0.015 or > 0.985,
# ReLU at 0. Gradients through a flat unit are scaled by < 6%, so it barely learns.
FLAT = 0.06


def relative_slope(layer):
    """The activation's derivative at its last input (its local_grad()), divided by its largest one.

    layer: an activation layer after a forward pass. Returns an array shaped like layer.out.
    """
    if isinstance(layer, Activation):
        return (layer.local_grad() / layer.max_slope).astype(layer.out.dtype, copy=False)
    raise ValueError(_("relative_slope: expected an activation layer ({names}), got {layer}", layer=repr(layer),
                       names=", ".join(c.__name__ for c in ACTIVATIONS.values())).shown())


def activation_stats(model, X):
    """Health of every activation layer of model on the inputs X (N, features), in eval mode.

    Returns a DataFrame with one row per activation layer: layer (its index in the model),
    kind, saturated (share of the N x units activations that are flat), dead (share of
    units flat for every one of the N inputs), mean and std of the activations.
    """
    if not isinstance(X, np.ndarray) or X.ndim != 2 or len(X) == 0:
        raise ValueError(_("activation_stats: expected X of shape (N, features) with N > 0, got {got}",
                           got=getattr(X, "shape", type(X).__name__)).shown())
    with evaluating(model):
        model.forward(X)
    rows = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, tuple(ACTIVATIONS.values())):
            flat = relative_slope(layer) < FLAT
            rows.append({"layer": i, "kind": type(layer).__name__, "saturated": float(flat.mean()),
                         "dead": float(flat.all(axis=0).mean()),
                         "mean": float(layer.out.mean()), "std": float(layer.out.std())})
    return pd.DataFrame(rows, columns=["layer", "kind", "saturated", "dead", "mean", "std"])


class TrainingMonitor:
    """Callback for utils.core.train.train that records weight and activation diagnostics per epoch.

    monitor = TrainingMonitor(model, X_probe)     # records epoch 0, the initial state
    train(model, ..., callback=monitor)           # records epochs 1, 2, ...

    X_probe: (N, features), a fixed batch (e.g. validation images) for activation_stats. sample_size: at
    most this many weights per layer are kept per epoch (a fixed random subset, chosen with seed).
    Attributes after training:
    - ratios: DataFrame, one row per epoch >= 1: epoch, layer, ratio = ||W_e - W_(e-1)|| / ||W_(e-1)||
    - activations: DataFrame of activation_stats per epoch (epoch column added)
    - samples: {layer index: list of 1-D weight samples, one per recorded epoch}
    """

    def __init__(self, model, X_probe, sample_size=20000, seed=0):
        rng = np.random.default_rng(seed)
        self.X_probe = X_probe
        self.epochs, self.samples, self._subset, self._previous = [], {}, {}, {}
        self._ratios, self._activations = [], []
        for i, layer in linear_layers(model):
            size = layer.params["W"].size
            self._subset[i] = np.sort(rng.choice(size, sample_size, replace=False)) if size > sample_size else None
            self.samples[i] = []
        self._record(0, model)

    def __call__(self, history, model):
        self._record(int(history["epoch"].iloc[-1]), model)

    def _record(self, epoch, model):
        self.epochs.append(epoch)
        for i, layer in linear_layers(model):
            W = layer.params["W"]
            flat = W.ravel()
            self.samples[i].append(flat.copy() if self._subset[i] is None else flat[self._subset[i]])
            if i in self._previous:
                before = self._previous[i]
                self._ratios.append({"epoch": epoch, "layer": i,
                                     "ratio": float(np.linalg.norm(W - before) / np.linalg.norm(before))})
            self._previous[i] = W.copy()
        self._activations.append(activation_stats(model, self.X_probe).assign(epoch=epoch))

    @property
    def ratios(self):
        return pd.DataFrame(self._ratios, columns=["epoch", "layer", "ratio"])

    @property
    def activations(self):
        return pd.concat(self._activations, ignore_index=True)

    def weight_histograms(self, layer, bins=61):
        """Histograms of one layer's weights, one per recorded epoch, on common bin edges.

        Returns (epochs, edges, counts): epochs (E,), edges (bins + 1,) symmetric around 0,
        counts (E, bins) as the share of the sampled weights in each bin.
        """
        if layer not in self.samples:
            raise ValueError(_("layer {layer} is not a Linear layer; Linear layers: {layers}",
                               layer=layer, layers=sorted(self.samples)).shown())
        samples = self.samples[layer]
        limit = max(float(np.abs(s).max()) for s in samples)
        edges = np.linspace(-limit, limit, bins + 1)
        counts = np.stack([np.histogram(s, edges)[0] / len(s) for s in samples])
        return np.array(self.epochs), edges, counts


# ---------------------------------------------------------------- the doctor: "why doesn't my network learn?"

# Thresholds, with the reasoning behind each in the finding's text. The update-to-weight ratio
# |ΔW| / |W| of one real optimiser step (the median over the weight matrices) has one target,
# about 1e-3 in steady training (Karpathy), and one healthy band around it, 1e-5..1e-1
# (100x either side): the first steps from initialisation reach ~1e-2, momentum included
# ~1e-1. The doctor flags a ratio outside the band, and its fix moves it back into the band.
DOCTOR = {"sample": 1000, "probe_size": 20, "probe_steps": 200, "dead": 0.5, "saturated": 0.5,
          "ratio_target": 1e-3, "ratio_low": 1e-5, "ratio_high": 1e-1, "one_class": 0.9,
          "lr": 0.05}  # a typical SGD learning rate, judged when neither optimizer, lr nor a history is given


def _copy(model):
    """A new model with the same layers and weights: the doctor never changes the caller's."""
    dtype = next(iter(model.params.values())).dtype
    twin = from_config(model.config(), dtype=dtype)
    for k, p in twin.params.items():
        p[...] = model.params[k]
    return twin.eval()  # dropout off: the probes measure the network, not the noise


def _overfit_steps(model, X, y, steps):
    """Adam (lr 1e-3, a safe default) on one small batch: the first step with 100% accuracy, or None."""
    opt, loss_fn = Adam(lr=1e-3), SoftmaxCrossEntropy()
    with np.errstate(all="ignore"):
        for step in range(1, steps + 1):
            logits = model.forward(X)
            loss_fn.forward(logits, y)
            model.backward(loss_fn.backward(), need_dx=False)
            opt.step(model)
            if (model.forward(X).argmax(axis=1) == y).all():
                return step
    return None


def update_ratios(model, optimizer):
    """Update-to-weight ratios |W_after - W_before| / |W| of one real step of optimizer, per weight matrix.

    model: a copy whose grads hold the gradients (it is changed); optimizer: SGD or Adam, copied
    with its state, so the caller's is untouched. Returns ({name: ratio}, note): when the
    optimiser has momentum but no velocity yet, its first step is the plain SGD one and later
    steps grow up to 1/(1 - momentum) times larger; the ratios are scaled to that steady size.
    """
    opt = copy.deepcopy(optimizer)
    before = {name: p.copy() for _, name, p, _ in model.parameters() if name.endswith(".W") and np.any(p)}
    with np.errstate(all="ignore"):
        opt.step(model)
    ratios = {name: float(np.linalg.norm(model.params[name] - W) / np.linalg.norm(W)) for name, W in before.items()}
    mu = getattr(opt, "momentum", 0.0)
    if isinstance(opt, SGD) and mu > 0 and not optimizer.slots["velocity"]:
        first = 1 + mu if opt.nesterov else 1.0  # the size of the first step, in units of lr * |dW|
        ratios = {k: v / first / (1 - mu) for k, v in ratios.items()}
        return ratios, _("SGD with momentum {mu:g}: one step from zero velocity, times 1/(1 - {mu:g}) = "
                         "{factor:.3g} for the steady step", mu=mu, factor=1 / (1 - mu))
    if isinstance(opt, Adam) and optimizer.t == 0:
        return ratios, _("Adam's first step (about lr per weight)")
    if opt.slots and any(opt.slots.values()):
        return ratios, _("one step of {optimizer} with its state", optimizer=type(opt).__name__)
    return ratios, _("one step of {optimizer}", optimizer=type(opt).__name__)


def diagnose(model, X, y, history=None, lr=None, seed=0, *, optimizer=None, X_train=None, y_train=None,
             predict=None):
    """Why does (or would) this network not learn? Checks model on (X, y) and, if given, its history.

    model: a Sequential; X: inputs as the model takes them (N, ...), y: (N,) integer labels, typically the
    validation set; a random sample of DOCTOR["sample"] (1,000) of them is probed (drawn with seed), and the
    printout says so. history: train()'s DataFrame (for NaN, exploding loss, a plateau, accuracy stuck at
    chance); optimizer: the optimiser to take one real step with (e.g. utils.core.train.make_optimizer(
    cfg["train"]), or your own, state included; it is copied); default plain SGD with lr (default: the
    history's first lr, else DOCTOR["lr"], 0.05). X_train, y_train: the training set in its stored order, to
    check that X is not in it and that the labels are not sorted. predict: your evaluation code, a function
    X -> logits or labels (e.g. lambda X: model.forward(X)), called twice on the same images: predictions
    that differ mean dropout is on at evaluation. The model is not changed: every probe runs on a copy.
    Returns a Diagnosis, a list of Finding, most severe first (empty for a healthy network), whose .signals
    holds every number measured; print() it.
    """
    X, y = np.asarray(X), np.asarray(y)
    if len(X) == 0 or len(X) != len(y):
        raise ValueError(_("diagnose: expected X with N > 0 rows and labels y of shape (N,), got {X} and {y}",
                           X=X.shape, y=y.shape).shown())
    if optimizer is not None and not isinstance(optimizer, (SGD, Adam)):
        raise ValueError(_("diagnose: optimizer must be a utils.core.optim SGD or Adam, got {optimizer}",
                           optimizer=repr(optimizer)).shown())
    if lr is None:
        lr = float(history["lr"].iloc[0]) if history is not None and len(history) and "lr" in history else DOCTOR["lr"]
    optimizer = SGD(lr) if optimizer is None else optimizer
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(X), min(len(X), DOCTOR["sample"]), replace=False)
    Xs, ys = X[pick], y[pick]
    twin = _copy(model)
    dtype = next(iter(twin.params.values())).dtype
    found, s = [], {}
    add = lambda *args: found.append(Finding(*args))  # noqa: E731

    # Inputs: the network expects roughly standardised values.
    s["input_mean"], s["input_std"] = float(Xs.mean()), float(Xs.std())
    s["input_min"], s["input_max"] = float(Xs.min()), float(Xs.max())
    if s["input_min"] >= 0 and s["input_max"] > 20:
        add(_("inputs are raw pixel values"),
            _("inputs range {low:.0f}..{high:.0f}, mean {mean:.3g}, std {std:.3g}", low=s["input_min"],
              high=s["input_max"], mean=s["input_mean"], std=s["input_std"]),
            _("initialisations (He, Glorot) assume inputs of mean 0 and std 1; pixels up to 255 make the first "
              "layer's outputs ~100x too large, the softmax saturates and the gradients are huge or vanish"),
            _("scale to [0, 1] (X / 255), then standardise with the training set's mean and std "
              "(utils.core.preprocess.scale, utils.core.preprocess.standardize)"), 3)
    elif abs(s["input_mean"]) > 0.5 or not 0.5 < s["input_std"] < 2:
        far = abs(s["input_mean"]) > 1 or not 0.1 < s["input_std"] < 10
        add(_("inputs are not standardised"),
            _("input mean {mean:.3g}, std {std:.3g} (standardised: about 0 and 1)", mean=s["input_mean"],
              std=s["input_std"]),
            _("off-centre or badly scaled inputs slow gradient descent down: all first-layer weights of a unit "
              "move in the same direction (mean far from 0) or the steps fit badly") if far else
            _("a mild note: inputs in [0, 1] (std ~0.35) train fine (d2l trains Fashion-MNIST so); centring them "
              "helps gradient descent a little"),
            _("subtract the training set's mean and divide by its std (utils.core.preprocess.standardize)"),
            2 if far else 1)

    # Weights all zero: every unit of a layer computes the same, forever.
    zero = [name for name, p in twin.params.items() if name.endswith(".W") and not np.any(p)]
    s["zero_weight_layers"] = len(zero)
    if zero:
        add(_("weights initialised to zero"), _("every weight is 0 in {layers}", layers=", ".join(zero)),
            _("identical units get identical gradients, so they stay identical (the symmetry is never broken); "
              "with ReLU the gradients are exactly 0 and nothing but the last biases learns"),
            _("initialise with small random weights, He (ReLU) or Glorot (sigmoid, tanh), as module.Linear does"), 3)

    # The loss on the data: at initialisation about ln(K) for K classes, the loss of guessing uniformly.
    with np.errstate(all="ignore"):
        logits = twin.forward(np.ascontiguousarray(Xs, dtype=dtype))
        loss_fn = SoftmaxCrossEntropy()
        loss = loss_fn.forward(logits, ys) if np.isfinite(logits).all() else float("nan")
    K = logits.shape[1]
    s["loss"], s["chance_loss"] = float(loss), float(np.log(K))
    if not np.isfinite(loss) or not all(np.isfinite(p).all() for p in twin.params.values()):
        add(_("the loss is NaN or inf"), _("loss {loss} on {n} samples", loss=loss, n=len(Xs)),
            _("a NaN spreads to every weight at the next update; the network cannot recover"),
            _("lower the learning rate (divide by 10), check the inputs for NaN, start from fresh weights"), 3)
    elif loss > 2 * s["chance_loss"]:  # 2 ln(K): a He-initialised output layer still passes (~1.35 ln K)
        add(_("the loss is far above chance"),
            _("loss {loss:.3g}, against ln(K) = ln({K}) = {chance:.3g} for uniform guessing", loss=loss, K=K,
              chance=s["chance_loss"]),
            _("the network is confidently wrong: its logits are far too large, from weights initialised too large "
              "or unscaled inputs; the first steps then only undo that. Even a He-initialised output layer gives "
              "logits larger than needed (loss ~3.1 for 10 classes, where ln 10 = 2.3); the doctor lets that pass, "
              "but an output layer initialised smaller starts at ~ln(K)"),
            _("standardise the inputs; initialise hidden layers with std sqrt(2 / fan_in) (He) and the output "
              "layer about ten times smaller (e.g. std 0.01; Glorot is barely smaller than He there)"), 2)

    # All predictions the same class.
    share = np.bincount(logits.argmax(axis=1), minlength=K).max() / len(Xs)
    s["top_class_share"], s["accuracy"] = float(share), float((logits.argmax(axis=1) == ys).mean())
    if share > DOCTOR["one_class"] and len(np.unique(ys)) > 1:
        add(_("all predictions are the same class"),
            _("{share:.0%} of {n} predictions are one class", share=share, n=len(Xs)),
            _("the network ignores its input: dead or symmetric units, or a learning rate that sent the weights "
              "where one class wins everywhere"), _("see the other findings; check the weights and the learning rate"),
            2)

    # Dead ReLUs and saturated sigmoid/tanh units (activations cached by the forward pass above).
    for i, layer in enumerate(twin.layers):
        if isinstance(layer, Activation) and np.isfinite(layer.out).all():
            flat = relative_slope(layer) < FLAT
            if isinstance(layer, (ReLU, LeakyReLU)):
                dead = float(flat.all(axis=0).mean())
                s[f"dead_{i}"] = dead
                if dead > DOCTOR["dead"]:
                    add(_("dead ReLU units in layer {i}", i=i),
                        _("{dead:.0%} of the units are 0 for every one of the {n} sampled inputs", dead=dead,
                          n=len(Xs)),
                        _("on these inputs a dead unit passes no gradient to its own weights, so the layer works "
                          "with fewer units. It can revive: its inputs change as earlier layers learn, and dead on a "
                          "sample is not dead on the whole training set; only a unit dead for every training image "
                          "never updates its weights"),
                        _("lower the learning rate; He initialisation; LeakyReLU"), 2)
            else:
                sat = float(flat.mean())
                s[f"saturated_{i}"] = sat
                if sat > DOCTOR["saturated"]:
                    add(_("saturated {kind} units in layer {i}", kind=type(layer).__name__, i=i),
                        _("{share:.0%} of the activations sit where the derivative is below 6% of its maximum",
                          share=sat),
                        _("gradients through a saturated unit vanish: the layers below barely learn"),
                        _("smaller initial weights (Glorot), standardised inputs, or ReLU"), 2)

    # One real optimiser step on a copy: the update-to-weight ratio |ΔW| / |W|.
    loss_fn.forward(logits, ys)
    with np.errstate(all="ignore"):
        twin.backward(loss_fn.backward(), need_dx=False)
    ratios, how = update_ratios(twin, optimizer)
    moving = sorted(v for v in ratios.values() if v > 0)  # 0: no gradient reached it (dead units), not the lr
    if moving:
        ratio = float(np.median(moving))
        s["update_ratio"], s["update_ratio_max"] = ratio, max(moving)
        low, high, target = DOCTOR["ratio_low"], DOCTOR["ratio_high"], DOCTOR["ratio_target"]
        measured = _("update-to-weight ratio |ΔW| / |W| = {ratio:.2g}, the median over {n} weight matrices "
                     "({how}, lr {lr:g}); healthy: {low:g}..{high:g} around the target {target:g} of steady "
                     "training (~1e-2 in the first steps from initialisation)", ratio=ratio, n=len(moving), how=how,
                     lr=optimizer.lr, low=low, high=high, target=target)
        if ratio > high:
            add(_("the learning rate is too high"), measured,
                _("steps that large overshoot: the loss oscillates, explodes to NaN or kills ReLU units"),
                _("divide the learning rate by {band:.3g} or more (into the band; by {best:.3g} for the target "
                  "{target:g}), or pick it with a learning-rate range test (utils.teaching.sanity.lr_range_test)",
                  band=ratio / high, best=ratio / target, target=target), 3)
        elif ratio < low:
            add(_("the learning rate is too low"), measured, _("the weights barely move: training crawls"),
                _("multiply the learning rate by {band:.3g} or more (into the band; by {best:.3g} for the target "
                  "{target:g}), or pick it with a learning-rate range test (utils.teaching.sanity.lr_range_test)",
                  band=low / ratio, best=target / ratio, target=target), 1)

    # Can it overfit one small batch? If not, no amount of data or epochs will help.
    probe = rng.choice(len(X), min(len(X), DOCTOR["probe_size"]), replace=False)
    steps = _overfit_steps(_copy(model), np.ascontiguousarray(X[probe], dtype=dtype), y[probe], DOCTOR["probe_steps"])
    s["overfit_steps"] = steps if steps is not None else f">{DOCTOR['probe_steps']}"
    if steps is None:
        add(_("the network cannot overfit one small batch"),
            _("{n} samples, {steps} Adam steps (lr 1e-3): training accuracy stayed below 100%", n=len(probe),
              steps=DOCTOR["probe_steps"]),
            _("any working network memorises a handful of samples; if it cannot, the bug is in the model, its "
              "initialisation or the data, not in the hyperparameters"),
            _("look at the other findings; check the labels match the inputs; a gradient check"), 3)

    # Common student bugs: evaluation in train mode, validation images in the training set, sorted labels.
    s["train_mode"] = bool(model.training)  # normal before and during training; evaluation wants eval mode
    if predict is not None:
        with np.errstate(all="ignore"):
            found.append(check_train_mode(predict, np.ascontiguousarray(Xs, dtype=dtype)))
    s["overlap_with_train"], overlap = check_overlap(X_train, X)
    s["same_label_neighbours"], sorted_labels = check_label_order(y_train)
    found += [overlap, sorted_labels]

    # From the training history: NaN, explosion, plateau, accuracy stuck at chance.
    if history is not None and len(history):
        train_loss = np.asarray(history["train_loss"], dtype=float)
        s["epochs"] = len(history)
        if not np.isfinite(train_loss).all() or ("val_loss" in history and not np.isfinite(history["val_loss"]).all()):
            add(_("the loss became NaN during training"), _("the history holds NaN or inf losses"),
                _("the updates overflowed; from then on every weight is NaN"),
                _("lower the learning rate (divide by 10)"), 3)
        elif len(train_loss) > 1 and train_loss[-1] > 2 * train_loss.min():
            add(_("the training loss is exploding"),
                _("training loss {best:.3g} at best, {last:.3g} at the last epoch", best=train_loss.min(),
                  last=train_loss[-1]),
                _("the steps have grown larger than the valley they should descend"),
                _("lower the learning rate, or decay it sooner"), 3)
        found.append(check_plateau(history, K))
        if "val_acc" in history and len(history) >= 2:
            s["best_val_acc"] = float(history["val_acc"].max())
            if s["best_val_acc"] < 1.5 / K:
                add(_("validation accuracy is stuck at chance"),
                    _("best validation accuracy {best:.3g} after {epochs} epochs; guessing gives {chance:.3g}",
                      best=s["best_val_acc"], epochs=len(history), chance=1 / K),
                    _("the network learned nothing that carries over to new images"),
                    _("see the other findings; run the overfit and gradient checks (utils.teaching.sanity)"), 3)

    # English words of the problems: the ranking is the same in every language.
    order = ["NaN", "raw pixel", "zero", "overlap", "overfit", "exploding", "too high", "far above", "not standardised"]
    rank = lambda f: (-f.severity, next((i for i, w in enumerate(order) if w in f.problem), len(order)))  # noqa: E731
    found = mark_consequences(sorted((f for f in found if f is not None), key=rank))
    sample = _("a random {n:,} of the {total:,} images (seed {seed})", n=len(Xs), total=len(X), seed=seed)
    return Diagnosis(found, s, sample)
