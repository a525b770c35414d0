"""Checks for the training-loop exercises of notebook 06: one epoch of mini-batch training, keeping and
reloading the best weights, and evaluation (loss, accuracy, confusion matrix).

Each check runs the student's function on a tiny network of module.py's layers (so that only the loop is tested,
not the student's layers) and compares with the reference loop below, which does what
utils.core.train.train_epoch does (tests/teaching/test_checks_loop.py holds them equal). A known mistake is
recognised by running the reference with that mistake, from the same weights and the same seed, and finding the
student's numbers among the results. Every message is in the reader's language (utils.plumbing.language).
"""
import numpy as np

import module
from utils.core.optim import l2_penalty, l2_regularize
from utils.plumbing.language import _
from utils.teaching.checks_common import NotWrittenYet, call, checker, compare, correct, numbers
from utils.teaching.gradcheck import rel_error


class Net:
    """The notebook's Network: a chain of layers whose flat params and grads dicts are built once."""

    def __init__(self, layers):
        self.layers = layers
        self.params = {f"{i}.{k}": v for i, layer in enumerate(layers) for k, v in layer.params.items()}
        self.grads = {f"{i}.{k}": v for i, layer in enumerate(layers) for k, v in layer.grads.items()}

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout, need_dx=True):  # need_dx: accepted for utils.core.train's loop, not used
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def train(self):
        for layer in self.layers:
            layer.train()

    def eval(self):
        for layer in self.layers:
            layer.eval()

    def parameters(self):  # what utils.core.optim's l2 functions walk
        for name, p in self.params.items():
            yield None, name, p, self.grads[name]


class SGD:
    """The notebook's SGD: momentum, one velocity per parameter name, updates in place."""

    def __init__(self, lr, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, {}

    def step(self, params, grads):
        for name, p in params.items():
            v = self.v[name] = self.momentum * self.v.get(name, 0) - self.lr * grads[name]
            p += v


def loss_fn(logits, y):
    """The reference softmax cross-entropy, in the exercise's form (loss, dlogits)."""
    loss = module.SoftmaxCrossEntropy()
    return loss.forward(logits, y), loss.backward()


def l2_fn(params, l2_lambda):
    """The reference L2, in the exercise's form (penalty, {weight name: gradient})."""
    weights = {k: v for k, v in params.items() if k.endswith(".W")}
    return l2_lambda / 2 * sum(float(np.sum(w ** 2)) for w in weights.values()), {
        k: l2_lambda * w for k, w in weights.items()}


def tiny_net(seed, d=6, k=3, dropout=0.3):
    """Linear, ReLU, Dropout, Linear in float64 with non-zero biases; the same seed, the same net."""
    rng = np.random.default_rng(seed)
    layers = [module.Linear(d, 8, rng=rng, dtype=np.float64), module.ReLU(),
              module.Dropout(dropout, rng=seed), module.Linear(8, k, rng=rng, dtype=np.float64)]
    for layer in layers[::3]:
        layer.params["b"][:] = rng.standard_normal(layer.params["b"].shape)
    return Net(layers)


def reference_epoch(net, X, y, optimizer, schedule, rng, it=0, batch_size=64, l2_lambda=0.0, bug=None):
    """One epoch as train_epoch does it -> (loss of every step, data plus L2 penalty; it at the end). bug: None, or
    the name of a known mistake to make (see loop_bugs()), to recognise it in a student's loop."""
    n = len(X)
    if bug != "eval_mode":
        net.train()
    order = np.arange(n) if bug == "no_shuffle" else rng.permutation(n)
    order_y = rng.permutation(n) if bug == "shuffled_apart" else order
    if bug == "wrap_around":
        order, order_y = np.concatenate([order, order]), np.concatenate([order_y, order_y])
    last = n - batch_size + 1 if bug == "drop_last" else n
    losses, total = [], None
    for step, first in enumerate(range(0, last, batch_size)):
        idx, idx_y = order[first:first + batch_size], order_y[first:first + batch_size]
        if bug != "lr_after_step":
            optimizer.lr = schedule(step if bug == "clock_restarts" else it)
        loss, dlogits = loss_fn(net.forward(X[idx]), y[idx_y])
        net.backward(dlogits)
        if bug != "l2_grad_missing":
            l2_regularize(net, l2_lambda)
        penalty = 0.0 if bug == "l2_loss_missing" else l2_penalty(net, l2_lambda)
        grads = net.grads
        if bug == "accumulated":
            total = {k: g.copy() for k, g in grads.items()} if total is None else {
                k: total[k] + g for k, g in grads.items()}
            grads = total
        optimizer.step(net.params, grads)
        if bug == "lr_after_step":
            optimizer.lr = schedule(it)
        losses.append(loss + penalty)
        it += 1
    return losses, it


def loop_bugs():  # {name: the likely cause} of each mistake reference_epoch knows, in the reader's language now
    return {
        "no_shuffle": _("the samples are not shuffled: order = rng.permutation(len(X)) with the generator passed "
                        "in, then X[order] and y[order]"),
        "shuffled_apart": _("X and y are shuffled with two different orders (two permutations, or rng.shuffle on "
                            "each), so the labels no longer belong to their images: draw one order and index both"),
        "eval_mode": _("the network is not in train mode (dropout inactive): call net.train() at the start of the "
                       "epoch; evaluation left it in eval mode"),
        "lr_after_step": _("the learning rate is set after the step: optimizer.lr = schedule(it) comes before "
                           "optimizer.step, so each step uses its own iteration's rate"),
        "clock_restarts": _("the schedule's clock restarts at 0 every epoch: call schedule(it) with the iteration "
                            "count carried across epochs (it starts at the value passed in)"),
        "l2_grad_missing": _("L2 is added to the loss but not to the gradient: add l2_lambda * W (the gradients "
                             "l2_fn returns) to net.grads before the step"),
        "l2_loss_missing": _("L2 is added to the gradient but not to the loss: the loss of a step is the data loss "
                             "plus the penalty l2_fn returns"),
        "accumulated": _("gradients are accumulated across batches: each step must use this batch's gradient only "
                         "(a running sum of grads, or += into a dict kept across batches, adds up old batches)"),
        "wrap_around": _("the last batch was filled up with samples from the start of the epoch, which are then "
                         "counted twice: the last batch is simply smaller, order[first:first + batch_size]"),
    }


@checker
def check_train_epoch(fn, seed=0):
    """Check fn(net, X, y, optimizer, schedule, rng, it, batch_size, l2_lambda, loss_fn, l2_fn) -> (losses, it).

    50 samples in batches of 16 (the last has 2), dropout in the net, an exponential schedule that changes the
    rate every step, momentum and L2: the student's loop and the reference start from the same weights and seed;
    the loss of every step and the weights after the epoch must agree.
    """
    data = np.random.default_rng(seed + 1)
    X, y = data.standard_normal((50, 6)), data.integers(0, 3, 50)
    it0, batch_size, l2_lambda = 3, 16, 0.05
    schedule = lambda t: 0.3 * 0.8 ** t

    def run(loop, bug=None):
        net = tiny_net(seed)
        net.eval()  # as after the previous epoch's evaluation
        optimizer = SGD(schedule(it0 - 1))  # the rate the previous epoch ended with
        args = (net, X.copy(), y.copy(), optimizer, schedule, np.random.default_rng(seed))
        kwargs = {"it": it0, "batch_size": batch_size, "l2_lambda": l2_lambda}
        return (reference_epoch(*args, **kwargs, bug=bug) if loop is reference_epoch else
                call("train_epoch", loop, *args, **kwargs, loss_fn=loss_fn, l2_fn=l2_fn)), net.params

    (want_losses, want_it), want_params = run(reference_epoch)
    result, params = run(fn)
    if not isinstance(result, tuple) or len(result) != 2:
        raise AssertionError(_("train_epoch should return two things, (the list of step losses, it at the end); "
                               "got {type}").format(type=type(result).__name__))
    losses, steps = numbers(_("train_epoch (its list of step losses)"), result[0]), len(want_losses)
    if losses.ndim != 1:
        raise AssertionError(_("train_epoch: the losses have shape {shape}; expected a list of {steps} numbers, "
                               "one per step (a mini-batch)").format(shape=losses.shape, steps=steps))
    if len(losses) != steps:
        cause = (_("the last partial batch ({left} samples) is dropped: range(0, len(X), batch_size) reaches it, "
                   "it is just smaller").format(left=len(X) % batch_size) if len(losses) == steps - 1 else
                 _("one step too many: an extra (empty or repeated) batch after the last one") if len(losses) > steps
                 else _("one step per mini-batch of batch_size samples"))
        raise AssertionError(_("train_epoch made {made} steps for {n} samples in batches of {batch_size}, expected "
                               "{steps}. Likely cause: {cause}").format(made=len(losses), n=len(X), steps=steps,
                                                                        batch_size=batch_size, cause=cause))
    causes = loop_bugs()
    variants = {bug: run(reference_epoch, bug) for bug in causes}
    extra = [(v[0][0], causes[bug]) for bug, v in variants.items()]
    err = compare(_("train_epoch: the loss at each step"), losses, want_losses, extra=extra, plural=False,
                  formula=_("per batch: lr = schedule(it); forward; loss + L2 penalty; backward; + L2 gradient; step"))
    for k, want in want_params.items():
        extra = [(v[1][k], causes[bug]) for bug, v in variants.items()]
        err = max(err, compare(_("train_epoch: the weights {k} after the epoch").format(k=k), params[k], want,
                               extra=extra, plural=True))
    it = numbers(_("train_epoch (its iteration count)"), result[1], shape=())
    if it != want_it:
        cause = _("it should go up by 1 per step: {it0} + {steps} steps = {want}") if it != steps else _(
            "it counts from 0 every epoch: return the count carried on, it + the number of steps")
        raise AssertionError(_("train_epoch returned it = {it:g}, expected {want}. Likely cause: {cause}").format(
            it=it, want=want_it, cause=cause.format(it0=it0, steps=steps, want=want_it)))
    correct(err, _("one epoch, {steps} steps of a shuffled, dropout, L2, momentum and schedule loop").format(
        steps=steps))


# ---------------------------------------------------------------- the best weights

ACCURACIES = (0.5, 0.8, 0.6, 0.75, 0.7)  # the best is epoch 2: neither the first nor the last
VAL_LOSSES = (1.0, 0.6, 0.5, 0.55, 0.7)  # the lowest loss is epoch 3: another epoch than the best accuracy


@checker
def check_best_weights(fit, load_params):
    """Check fit(net, run_epoch, evaluate, num_epochs) -> (history, best) and load_params(net, params).

    run_epoch(epoch) moves the weights as an optimiser would (in place) and returns a training loss; evaluate(net)
    -> (val_loss, val_acc) reads the epoch back from the weights. The best epoch by validation accuracy is 2 of 5;
    best["params"] must hold copies of its weights; at the end they are loaded back into the net, which then
    scores what was recorded.
    """
    net = Net([module.Linear(3, 2, rng=0, dtype=np.float64)])
    layer = net.layers[0]

    def run_epoch(epoch):
        layer.params["b"][0] += 1  # in place, as an optimiser: epoch e leaves b[0] = e
        layer.params["W"][...] *= 1.1
        return 2.0 / (epoch + 1)

    def epoch_of(which):
        return int(round(float(which["0.b"][0] if isinstance(which, dict) else which.params["b"][0])))

    def evaluate(net_):
        e = epoch_of(layer)
        if not 1 <= e <= len(ACCURACIES):
            raise AssertionError(_("evaluate found the weights of epoch {e}: fit should call run_epoch(epoch) "
                                   "once per epoch, for epoch = 1 .. num_epochs").format(e=e))
        return VAL_LOSSES[e - 1], ACCURACIES[e - 1]

    num_epochs = len(ACCURACIES)
    result = call("fit", fit, net, run_epoch, evaluate, num_epochs)
    if not isinstance(result, tuple) or len(result) != 2 or not isinstance(result[1], dict):
        raise AssertionError(_("fit should return (history, best): history a list of dicts, best a dict"))
    history, best = result
    if not isinstance(history, list) or len(history) != num_epochs:
        size, kind = (len(history) if hasattr(history, "__len__") else "?"), type(history).__name__
        raise AssertionError(_("fit: history should be a list with one dict per epoch ({num_epochs}), got {type} "
                               "of length {size}").format(num_epochs=num_epochs, size=size, type=kind))
    for e, row in enumerate(history, 1):
        want = {"epoch": e, "train_loss": 2.0 / (e + 1), "val_loss": VAL_LOSSES[e - 1], "val_acc": ACCURACIES[e - 1]}
        if not isinstance(row, dict) or set(want) - set(row):
            raise AssertionError(_("fit: history[{i}] should have the keys {keys}, got {got}").format(
                i=e - 1, keys=sorted(want), got=sorted(row) if isinstance(row, dict) else type(row).__name__))
        if any(not np.isclose(row[k], v) for k, v in want.items()):
            raise AssertionError(_("fit: history[{i}] is {row}, expected {want}. Likely cause: evaluate(net) after "
                                   "run_epoch(epoch), the values of that same epoch").format(i=e - 1, row=row,
                                                                                             want=want))
    if not {"epoch", "val_acc", "params"} <= set(best) or not isinstance(best["params"], dict):
        raise AssertionError(_("fit: best should be {{'epoch', 'val_acc', 'params'}}, got keys {keys}").format(
            keys=sorted(best)))
    chosen = {5: _("the last epoch was kept, not the best one: compare each epoch's val_acc with the best so far"),
              3: _("the epoch of the lowest validation LOSS was kept; keep the highest validation accuracy"),
              1: _("the comparison is the wrong way round: the best has the HIGHEST val_acc")}
    if best["epoch"] != 2:
        cause = chosen.get(best["epoch"]) or _("best['epoch'] is the epoch of the highest val_acc")
        raise AssertionError(_("fit: best['epoch'] is {epoch}, expected 2 (val_acc {accuracies}). Likely cause: "
                               "{cause}").format(epoch=best["epoch"], accuracies=ACCURACIES, cause=cause))
    saved = epoch_of(best["params"])
    if saved != 2:
        cause = (_("the saved best weights are references to the network's arrays, which training kept "
                   "changing: store copies, {k: v.copy() for k, v in net.params.items()}") if saved == num_epochs
                 else _("the weights are saved at another moment than the best val_acc"))
        raise AssertionError(_("fit: best['params'] holds the weights of epoch {saved}, not epoch 2. Likely cause: "
                               "{cause}").format(saved=saved, cause=cause))
    if not np.isclose(best["val_acc"], ACCURACIES[1]):
        raise AssertionError(_("fit: best['val_acc'] is {got}, expected {want}").format(got=best["val_acc"],
                                                                                        want=ACCURACIES[1]))
    if epoch_of(layer) != 2:
        raise AssertionError((_("fit: after fit the network holds the weights of epoch {epoch}. Likely cause: the "
                                "best weights were not loaded back at the end: load_params(net, best['params'])")
                              if epoch_of(net.params) == epoch_of(layer) else
                              _("load_params rebinds net.params[name] to the saved array; the layers still compute "
                                "with their own arrays: write into them, net.params[name][...] = params[name]"))
                             .format(epoch=epoch_of(layer)))
    _check_load_params(load_params)
    score = evaluate(net)[1]
    correct(abs(score - best["val_acc"]), _("the best of {num_epochs} epochs (epoch 2) kept as copies, loaded back; "
                                            "it scores {score} as recorded").format(num_epochs=num_epochs, score=score))


def _check_load_params(load_params):
    net = Net([module.Linear(3, 2, rng=1, dtype=np.float64)])
    own = {k: v for k, v in net.params.items()}
    saved = {k: np.full_like(v, 7.0) for k, v in own.items()}
    call("load_params", load_params, net, saved)
    for k, v in own.items():
        if net.params[k] is not v or net.layers[0].params[k.split(".")[1]] is not v:
            raise AssertionError(_("load_params replaced the array {k} instead of writing into it. Likely cause: "
                                   "net.params[{k!r}] = params[{k!r}] (or the layer's); the network's dicts and the "
                                   "optimiser hold references to the original arrays: "
                                   "net.params[{k!r}][...] = params[{k!r}]").format(k=k))
        compare(_("load_params: the network's {k} after loading").format(k=k), v, saved[k],
                formula="net.params[k][...] = params[k]")
    saved["0.W"][...] = -1
    if np.any(net.params["0.W"] == -1):
        raise AssertionError(_("load_params: the network's weights change when the saved dict changes. Likely "
                               "cause: the saved arrays themselves are put in the network; copy the values into "
                               "its arrays"))


# ---------------------------------------------------------------- evaluation

class _Watched(module.Dropout):
    """Dropout that remembers whether it was in train mode on its last forward."""

    def forward(self, x):
        self.seen_training = self.training
        return super().forward(x)


@checker
def check_evaluate(fn, seed=0):
    """Check fn(net, X, y, batch_size, loss_fn) -> (mean loss, accuracy), like utils.core.train.evaluate:
    the net holds a dropout layer and comes in train mode; 50 samples in batches of 16."""
    data = np.random.default_rng(seed + 2)
    X, y = data.standard_normal((50, 6)), data.integers(0, 3, 50)
    net = tiny_net(seed, dropout=0.5)
    net.layers[2] = _Watched(0.5, rng=seed)
    net.train()
    net.eval()
    logits = net.forward(X)
    want_loss, want_acc = loss_fn(logits, y)[0], float(np.mean(logits.argmax(axis=1) == y))
    batch_means = np.mean([loss_fn(logits[i:i + 16], y[i:i + 16])[0] for i in range(0, 50, 16)])
    net.train()
    result = call("evaluate", fn, net, X.copy(), y.copy(), batch_size=16, loss_fn=loss_fn)
    if not isinstance(result, tuple) or len(result) != 2:
        raise AssertionError(_("evaluate should return two numbers, (loss, accuracy), as utils.core.train.evaluate "
                               "does; got {type}").format(type=type(result).__name__))
    names = _("evaluate (its loss)"), _("evaluate (its accuracy)")
    loss, acc = (numbers(what, v, shape=()) for what, v in zip(names, result))
    if getattr(net.layers[2], "seen_training", False):
        raise AssertionError(_("evaluate ran the network in train mode: dropout was active. Likely cause: "
                               "net.eval() is missing before the forward passes"))
    if np.isclose(loss, want_acc) and np.isclose(acc, want_loss):
        raise AssertionError(_("evaluate returned (accuracy, loss). Likely cause: the order; return (loss, accuracy)"))
    err = compare(_("evaluate: the loss"), loss, want_loss, extra=[
        (batch_means, _("the mean of the batch losses: the last batch holds 2 samples, not 16; weight each batch's "
                        "loss by its size, sum(loss_b * len(batch)) / N"))],
        formula=_("mean over all N samples of -log p[y]"))
    err = max(err, compare(_("evaluate: the accuracy"), acc, want_acc, extra=[
        (want_acc * 50, _("the number of correct predictions: divide by N for the fraction")),
        (want_acc * 100, _("a percentage: return the fraction in [0, 1]"))],
        formula="mean(logits.argmax(axis=1) == y)"))
    correct(err, _("loss and accuracy in eval mode over batches of unequal size"))


@checker
def check_confusion(fn, num_classes=4, seed=0):
    """Check fn(y_true, y_pred, num_classes) -> (K, K) counts, row = true class, column = predicted class."""
    rng = np.random.default_rng(seed)
    y_true, y_pred = rng.integers(0, num_classes - 1, 40), rng.integers(0, num_classes - 1, 40)  # class K-1 absent
    want = np.zeros((num_classes, num_classes))
    np.add.at(want, (y_true, y_pred), 1)
    got = numbers("confusion_matrix", call("confusion_matrix", fn, y_true.copy(), y_pred.copy(), num_classes))
    k = num_classes - 1
    if got.shape == (k, k):
        raise AssertionError(_("confusion_matrix has shape {shape}, expected ({K}, {K}). Likely cause: the size is "
                               "read from the data (class {k} never occurs here): use num_classes, "
                               "np.zeros((num_classes, num_classes))").format(shape=got.shape, K=num_classes, k=k))
    err = compare("confusion_matrix", got, want, extra=[
        (want.T, _("transposed: the row is the TRUE class, the column the predicted one")),
        (want / want.sum(axis=1, keepdims=True).clip(1), _("normalised rows: return the counts")),
        (want / 40, _("fractions of all samples: return the counts"))],
        formula=_("M[true, predicted] += 1 for each sample (np.add.at(M, (y_true, y_pred), 1))"))
    correct(err, _("{K} x {K} counts, rows true, a class absent from the data").format(K=num_classes))


@checker
def check_trained(train, X_val, y_val, bar, keep=None):
    """The end-to-end run: train() -> (net, history, best) with the student's parts; the reloaded net must
    score best["val_acc"] on (X_val, y_val), and that must reach bar. keep (a dict) receives net, history, best.
    While a part is still empty the run stops at once and this says "not implemented yet"."""
    try:
        result = call(_("the end-to-end run"), train, cause=_("an error in one of your parts above; the line "
                                                              "named is where it happened"))
    except NotWrittenYet as e:
        raise NotWrittenYet(_("{e} (the end-to-end run uses every part above; skipped until they are written)")
                            .format(e=e)) from None
    net, history, best = result
    net.eval()
    hits = sum(int((net.forward(X_val[i:i + 1000]).argmax(axis=1) == y_val[i:i + 1000]).sum())
               for i in range(0, len(X_val), 1000))
    acc, recorded, epoch = hits / len(X_val), best["val_acc"], best["epoch"]
    if not np.isclose(acc, recorded, atol=1e-9):
        raise AssertionError(_("the reloaded network scores {acc:.4f} on the validation set, but fit recorded "
                               "{recorded:.4f} for epoch {epoch}. Likely cause: the best weights were not loaded "
                               "back (or were references that kept changing)").format(acc=acc, recorded=recorded,
                                                                                      epoch=epoch))
    if acc < bar:
        raise AssertionError(_("the validation accuracy {acc:.4f} is below the bar {bar}. Likely cause: a learning "
                               "rate too small or too large, or a part that passed its check but is used wrongly "
                               "here; look at the curves").format(acc=acc, bar=bar))
    if keep is not None:
        keep.update(net=net, history=history, best=best)
    epochs = ", ".join(f"{row['val_acc']:.4f}" for row in history)
    correct(rel_error(np.array(acc), np.array(recorded)), _("validation accuracy {acc:.4f} >= {bar} at epoch {epoch}, "
            "as recorded; per epoch: {epochs}").format(acc=acc, bar=bar, epoch=epoch, epochs=epochs))
