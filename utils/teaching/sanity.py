"""Sanity checks to run before a long training, as CS231n teaches them.

* ``initial_loss``: the loss of an untrained network, next to ln(K), the loss of guessing among K classes;
* ``network_gradient_check``: the whole network's backward pass against central differences,
  per parameter, with or without L2, dropout off (rel_error and GRADCHECK_TOL: utils.teaching.gradcheck);
* ``overfit_subset``: train on a few images until every one is classified right;
* ``lr_range_test`` / ``suggest_lr`` / ``plot_lr_range``: the loss while the learning rate
  grows geometrically, and the rate to read off it.
Every function works on a copy of the model: the caller's weights are never changed.
"""
import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from module import SoftmaxCrossEntropy
from utils.core.models import from_config
from utils.core.optim import SGD, l2_penalty, l2_regularize
from utils.plumbing.fonts import label
from utils.plumbing.language import _
from utils.teaching.gradcheck import numerical_gradient, rel_error


def copy_model(model, dtype=None):
    """A new Sequential with model's layers and weights (in dtype, default the model's), in eval mode."""
    dtype = dtype or next(iter(model.params.values())).dtype
    twin = from_config(model.config(), dtype=dtype)
    for k, p in twin.params.items():
        p[...] = model.params[k]
    return twin.eval()  # dropout off: a check must see one deterministic function


def zero_weights(model):
    """Set every weight and bias of model to 0, in place (a broken initialisation, for demonstrations)."""
    for p in model.params.values():
        p[...] = 0
    return model


@dataclass
class InitialLoss:
    loss: float
    chance: float
    logit_std: float

    def __str__(self):  # in the reader's language (utils.plumbing.language); the fields stay numbers
        head = _("loss at initialisation {loss:.3f}; ln(K) = {chance:.3f} for K classes, the loss of guessing "
                 "uniformly; the logits' std is {std:.2f}").format(loss=self.loss, chance=self.chance,
                                                                   std=self.logit_std)
        if abs(self.loss - self.chance) <= 0.05 * self.chance:
            return head + _(" (nearly equal logits: no class preferred yet, as it should be)")
        return head + _(" (logits that large prefer some classes before any training: a He-initialised output "
                        "layer makes them so; a smaller output layer gives ~ln(K))")


def initial_loss(model, X, y):
    """The mean cross-entropy of model on (X, y) with ln(K) beside it (K classes), and the logits' spread.

    The loss is exactly ln(K) when every class gets probability 1/K (all logits equal), a
    little more for small random logits, much more when the logits are large.
    """
    logits = copy_model(model).forward(X)
    loss = SoftmaxCrossEntropy().forward(logits, y)
    return InitialLoss(float(loss), math.log(logits.shape[1]), float(logits.std()))


def network_gradient_check(model, X, y, l2_lambda=0.0, num_checks=10, h=1e-5, seed=0):
    """Backward pass of the whole network (loss + L2) against central differences, per parameter.

    Works on a float64 copy in eval mode (dropout off: the loss must be one deterministic
    function of the weights). For each parameter, num_checks randomly chosen entries are
    perturbed by +-h (all entries of small ones). Returns a DataFrame: parameter, shape,
    entries checked, rel_error (largest relative error among them, utils.teaching.gradcheck.rel_error:
    about 1e-7 or less for a right backward pass, 1e-2 or more for a bug; a check passes below
    GRADCHECK_TOL = 1e-6).
    """
    net, loss_fn = copy_model(model, np.float64), SoftmaxCrossEntropy()
    X = np.asarray(X, dtype=np.float64)

    def total_loss():
        return loss_fn.forward(net.forward(X), y) + l2_penalty(net, l2_lambda)

    total_loss()
    net.backward(loss_fn.backward(), need_dx=False)
    l2_regularize(net, l2_lambda)
    rng, rows = np.random.default_rng(seed), []
    for _layer, name, p, g in net.parameters():
        analytic = g.reshape(-1).copy()
        idx = rng.choice(p.size, min(num_checks, p.size), replace=False)
        numeric = numerical_gradient(total_loss, p, h, indices=idx)
        rows.append({"parameter": name, "shape": p.shape, "checked": len(idx),
                     "rel_error": rel_error(analytic[idx], numeric)})
    return pd.DataFrame(rows)


def _batches(n, batch_size, rng):
    """Index arrays of one shuffled pass over n samples."""
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def _step(net, loss_fn, opt, X, y):
    """One SGD step on the batch (X, y); returns the batch's loss before the step."""
    loss = loss_fn.forward(net.forward(X), y)
    net.backward(loss_fn.backward(), need_dx=False)
    opt.step(net)
    return loss


def overfit_subset(model, X, y, n=100, lr=0.05, momentum=0.9, batch_size=20, max_epochs=100, seed=0):
    """Train a copy of model on the first n images of (X, y) until it classifies all of them right.

    SGD with momentum, no regularisation, dropout off. Returns a DataFrame with one row per
    epoch (epoch, loss, accuracy on the n images), ending at the first epoch with accuracy
    1.0 (or at max_epochs).
    """
    net, loss_fn, opt = copy_model(model), SoftmaxCrossEntropy(), SGD(lr, momentum=momentum)
    X, y = np.ascontiguousarray(X[:n], dtype=next(iter(net.params.values())).dtype), y[:n]
    rng, rows = np.random.default_rng(seed), []
    for epoch in range(1, max_epochs + 1):
        losses = [_step(net, loss_fn, opt, X[idx], y[idx]) for idx in _batches(len(X), batch_size, rng)]
        accuracy = float((net.forward(X).argmax(axis=1) == y).mean())
        rows.append({"epoch": epoch, "loss": float(np.mean(losses)), "accuracy": accuracy})
        if accuracy == 1.0:
            break
    return pd.DataFrame(rows)


def lr_range_test(model, X, y, lr_min=1e-5, lr_max=10.0, num_iters=200, batch_size=128, momentum=0.9,
                  stop_factor=4.0, seed=0):
    """The learning-rate range test (L. Smith, 2017): loss against a geometrically growing lr.

    A copy of model is trained with SGD (momentum as given) for up to num_iters mini-batches;
    the lr grows from lr_min to lr_max by the same factor every step, and the test stops when
    the smoothed loss exceeds stop_factor times its best. Returns a DataFrame: iteration, lr,
    loss (of the batch, before the step taken with that lr), smoothed (exponential moving
    average, bias-corrected).
    """
    net, loss_fn, opt = copy_model(model), SoftmaxCrossEntropy(), SGD(lr_min, momentum=momentum)
    X = np.ascontiguousarray(X, dtype=next(iter(net.params.values())).dtype)
    growth = (lr_max / lr_min) ** (1 / max(num_iters - 1, 1))
    rng, rows, average, best = np.random.default_rng(seed), [], 0.0, math.inf
    with np.errstate(all="ignore"):  # the last steps diverge on purpose
        while len(rows) < num_iters:
            for idx in _batches(len(X), batch_size, rng):
                it = len(rows)
                opt.lr = lr_min * growth ** it
                loss = _step(net, loss_fn, opt, X[idx], y[idx])
                average = 0.9 * average + 0.1 * loss
                smoothed = average / (1 - 0.9 ** (it + 1))
                rows.append({"iteration": it, "lr": opt.lr, "loss": loss, "smoothed": smoothed})
                best = min(best, smoothed)
                if len(rows) == num_iters or not math.isfinite(smoothed) or smoothed > stop_factor * best:
                    return pd.DataFrame(rows)
    return pd.DataFrame(rows)


def suggest_lr(table):
    """(suggested lr, lr at the minimum) of an lr_range_test table: the suggestion is a tenth of the lr
    where the smoothed loss is lowest, a rate still on the falling side, safely below divergence."""
    t = table[np.isfinite(table.smoothed)]
    at_minimum = float(t.lr.iloc[int(t.smoothed.argmin())])
    return at_minimum / 10, at_minimum


def plot_lr_range(table):
    """The loss (raw and smoothed) against the learning rate, log scale, with suggest_lr's two marks."""
    suggested, at_minimum = suggest_lr(table)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(table.lr, table.loss, color="0.8", lw=1, label=label("batch loss"))
    ax.plot(table.lr, table.smoothed, color="C0", label=label("smoothed"))
    for lr, text, color in ((at_minimum, label("lowest smoothed loss"), "C3"),
                            (suggested, label("a tenth of it"), "C2")):
        ax.axvline(lr, color=color, ls="--", label=label("{text}: lr {lr:.2g}").format(text=text, lr=lr))
    finite = table.smoothed[np.isfinite(table.smoothed)]
    ax.set(xscale="log", xlabel=label("learning rate (growing every iteration)"), ylabel=label("training loss"),
           ylim=(0, min(float(finite.max()), 1.3 * float(finite.iloc[0])) * 1.05),
           title=label("Learning-rate range test"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
