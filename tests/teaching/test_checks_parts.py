"""The checks of notebook 06's newer parts (dropout, Adam, cosine, the loop, best weights, evaluation,
the figures): each passes the teacher's answer and names every planted bug, written as a student would."""
import runpy
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import module  # noqa: E402
from utils.core.optim import SGD as ProjectSGD  # noqa: E402
from utils.core.optim import lr_schedule  # noqa: E402
from utils.core.train import DEFAULTS, train_epoch  # noqa: E402
from utils.teaching import checks_loop  # noqa: E402
from utils.teaching.checks_layers import check_dropout  # noqa: E402
from utils.teaching.checks_loop import (  # noqa: E402
    check_best_weights,
    check_confusion,
    check_evaluate,
    check_train_epoch,
    check_trained,
    reference_epoch,
    tiny_net,
)
from utils.teaching.checks_plots import check_curves, check_weight_images  # noqa: E402
from utils.teaching.checks_training import check_adam, check_cosine  # noqa: E402

# The teacher's answers (notebooks/solutions/06_exercises.py) are the right answers here.
S = runpy.run_path(str(Path(__file__).resolve().parents[2] / "notebooks" / "solutions" / "06_exercises.py"),
                   init_globals={"np": np, "Layer": module.Layer, "plt": plt})
Dropout, Adam, cosine_decay = S["Dropout"], S["Adam"], S["cosine_decay"]
fit, load_params, evaluate, confusion_matrix = S["fit"], S["load_params"], S["evaluate"], S["confusion_matrix"]
plot_curves, plot_first_layer = S["plot_curves"], S["plot_first_layer"]


def solution_epoch(*args, **kwargs):
    return S["train_epoch"](*args, **kwargs)


RIGHT = [(check_dropout, Dropout), (check_adam, Adam), (check_cosine, cosine_decay),
         (check_train_epoch, solution_epoch), (check_evaluate, evaluate), (check_confusion, confusion_matrix),
         (check_curves, plot_curves), (check_weight_images, plot_first_layer), (check_dropout, module.Dropout)]


@pytest.mark.parametrize("check, answer", RIGHT, ids=[f"{c.__name__}-{a.__name__}" for c, a in RIGHT])
def test_the_right_answer_passes(check, answer, capsys):
    check(answer)
    out = capsys.readouterr().out
    assert out.startswith("correct: ") and out.count("\n") == 1, out


def test_the_right_fit_and_load_params_pass(capsys):
    check_best_weights(fit, load_params)
    assert capsys.readouterr().out.startswith("correct: ")


def test_the_reference_loop_is_the_projects_train_epoch():
    """reference_epoch, which the check compares with, does what utils.core.train.train_epoch does."""
    data = np.random.default_rng(5)
    X, y = data.standard_normal((37, 6)), data.integers(0, 3, 37)
    schedule = lr_schedule(0.2, "exponential", 0.7, 1)
    hp = {**DEFAULTS, "batch_size": 8, "l2_lambda": 0.01}
    ours, theirs = tiny_net(3), tiny_net(3)
    losses, it = reference_epoch(ours, X, y, checks_loop.SGD(0.2), schedule, np.random.default_rng(1), it=2,
                                 batch_size=8, l2_lambda=0.01)
    _, _, their_it = train_epoch(theirs, X, y, ProjectSGD(0.2, momentum=0.9), schedule, hp,
                                 np.random.default_rng(1), it=2)
    assert it == their_it == 7
    for k in ours.params:
        np.testing.assert_allclose(ours.params[k], theirs.params[k], rtol=1e-12, atol=1e-12)
    assert len(losses) == 5


# ---------------------------------------------------------------- planted bugs, as a student writes them

class DropoutNotScaled(Dropout):
    def forward(self, x):
        if not self.training:
            self.mask = None
            return x
        self.mask = self.rng.random(x.shape) >= self.p
        return x * self.mask


class DropoutInEval(Dropout):
    def forward(self, x):
        self.mask = (self.rng.random(x.shape) >= self.p) / (1 - self.p)
        return x * self.mask


class DropoutKeepsP(Dropout):
    def forward(self, x):
        if not self.training:
            self.mask = None
            return x
        self.mask = (self.rng.random(x.shape) < self.p) / (1 - self.p)
        return x * self.mask


class DropoutNewMaskInBackward(Dropout):
    def backward(self, dout):
        return dout * (self.rng.random(dout.shape) >= self.p) / (1 - self.p)


class DropoutSameMask(Dropout):
    def forward(self, x):
        if not self.training:
            self.mask = None
            return x
        self.mask = (np.random.default_rng(0).random(x.shape) >= self.p) / (1 - self.p)
        return x * self.mask


class DropoutTestTimeScaling(Dropout):
    def forward(self, x):
        if not self.training:
            self.mask = None
            return x * (1 - self.p)
        return super().forward(x)


def adam(correction=True, per_param=False, square=True, sqrt=True, in_place=True, t_after=False):
    class StudentAdam(Adam):
        def step(self, params, grads):
            if not per_param and not t_after:
                self.t += 1
            for name, p in params.items():
                if per_param:
                    self.t += 1
                g = grads[name]
                m = self.m[name] = self.beta1 * self.m.get(name, 0) + (1 - self.beta1) * g
                v = self.v[name] = self.beta2 * self.v.get(name, 0) + (1 - self.beta2) * (g * g if square else abs(g))
                if correction:
                    m, v = m / (1 - self.beta1 ** self.t), v / (1 - self.beta2 ** self.t)
                update = self.lr * m / ((np.sqrt(v) if sqrt else v) + self.eps)
                if in_place:
                    p -= update
                else:
                    params[name] = p - update
            if t_after:
                self.t += 1
    return StudentAdam


def cosine(formula):
    def cosine_decay(t, lr, total_steps, min_lr=0.0):
        return formula(t, lr, total_steps, min_lr)
    return cosine_decay


def loop(no_shuffle=False, apart=False, drop_last=False, lr_after=False, l2_loss=True, l2_grad=True,
         train_mode=True, accumulate=False, restart_clock=False, return_steps=False):
    """train_epoch with the mistakes asked for, written as a student would write them."""
    def train_epoch(net, X, y, optimizer, schedule, rng, it=0, batch_size=64, l2_lambda=0.0, loss_fn=None,
                    l2_fn=None):
        if train_mode:
            net.train()
        if apart:
            X, y = X.copy(), y.copy()
            rng.shuffle(X)
            rng.shuffle(y)
            order = np.arange(len(X))
        else:
            order = np.arange(len(X)) if no_shuffle else rng.permutation(len(X))
        losses, total, step = [], None, 0
        stop = len(X) - batch_size + 1 if drop_last else len(X)
        for first in range(0, stop, batch_size):
            idx = order[first:first + batch_size]
            if not lr_after:
                optimizer.lr = schedule(step if restart_clock else it)
            loss, dlogits = loss_fn(net.forward(X[idx]), y[idx])
            net.backward(dlogits)
            penalty, g2 = l2_fn(net.params, l2_lambda)
            if l2_grad:
                for name, g in g2.items():
                    net.grads[name] += g
            grads = net.grads
            if accumulate:
                total = {k: g.copy() for k, g in grads.items()} if total is None else {
                    k: total[k] + g for k, g in grads.items()}
                grads = total
            optimizer.step(net.params, grads)
            if lr_after:
                optimizer.lr = schedule(it)
            losses.append(loss + (penalty if l2_loss else 0))
            it += 1
            step += 1
        return losses, (step if return_steps else it)
    return train_epoch


def fit_with(references=False, last=False, by_loss=False, no_reload=False, rebind=False):
    def student_load(net, params):
        for name, value in params.items():
            if rebind:
                net.params[name] = value.copy()
            else:
                net.params[name][...] = value

    def student_fit(net, run_epoch, evaluate, num_epochs):
        history, best = [], {"epoch": 0, "val_acc": -1.0, "val_loss": np.inf, "params": None}
        for epoch in range(1, num_epochs + 1):
            train_loss = run_epoch(epoch)
            val_loss, val_acc = evaluate(net)
            history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc})
            better = val_loss < best["val_loss"] if by_loss else val_acc > best["val_acc"]
            if better or last:
                params = dict(net.params) if references else {k: v.copy() for k, v in net.params.items()}
                best = {"epoch": epoch, "val_acc": val_acc, "val_loss": val_loss, "params": params}
        if not no_reload:
            student_load(net, best["params"])
        return history, best
    return student_fit, student_load


def evaluate_with(train_mode=False, batch_mean=False, count=False, swapped=False):
    def student_evaluate(net, X, y, batch_size=1000, loss_fn=None):
        if not train_mode:
            net.eval()
        losses, sizes, hits = [], [], 0
        for first in range(0, len(X), batch_size):
            logits = net.forward(X[first:first + batch_size])
            yb = y[first:first + batch_size]
            losses.append(loss_fn(logits, yb)[0])
            sizes.append(len(yb))
            hits += int((logits.argmax(axis=1) == yb).sum())
        loss = float(np.mean(losses)) if batch_mean else float(np.dot(losses, sizes) / len(X))
        acc = hits if count else hits / len(X)
        return (acc, loss) if swapped else (loss, acc)
    return student_evaluate


def confusion_transposed(y_true, y_pred, num_classes=10):
    return confusion_matrix(y_pred, y_true, num_classes)


def confusion_sized_by_data(y_true, y_pred, num_classes=10):
    k = int(max(y_true.max(), y_pred.max())) + 1
    return confusion_matrix(y_true, y_pred, k)


def confusion_normalised(y_true, y_pred, num_classes=10):
    M = confusion_matrix(y_true, y_pred, num_classes).astype(float)
    return M / np.maximum(M.sum(axis=1, keepdims=True), 1)


def curves(no_x=False, one_axes=False, no_labels=False, no_legend=False, skip_val_loss=False, drop_first=False):
    def plot_curves(history):
        rows = history[1:] if drop_first else history
        epochs = [r["epoch"] for r in rows]
        fig, (a1, a2) = plt.subplots(1, 2)
        a2 = a1 if one_axes else a2
        for key in ("train_loss",) + (() if skip_val_loss else ("val_loss",)):
            values = [r[key] for r in rows]
            a1.plot(values, label=key) if no_x else a1.plot(epochs, values, label=key)
        a2.plot(epochs, [r["val_acc"] for r in rows], label="val_acc")
        if not no_labels:
            for ax in {a1, a2}:
                ax.set_xlabel("epoch")
                ax.set_ylabel("value")
        if not no_legend:
            a1.legend()
        return None if drop_first is None else fig
    return plot_curves


def images(rows=False, transposed=False, count_off=0, no_return=False):
    def plot_first_layer(W, count=16):
        n = count + count_off
        fig, axes = plt.subplots(1, n)
        for j, ax in enumerate(axes):
            image = W.reshape(-1, 28, 28)[j] if rows else W[:, j].reshape(28, 28)
            ax.imshow(image.T if transposed else image)
        return None if no_return else fig
    return plot_first_layer


def trained(acc_offset=0.0, reload=True):
    """A run on a tiny separable problem: (net, history, best), the best possibly not loaded back."""
    def run():  # the class is the sign of the first input (VAL, Y_VAL below): W's first row decides
        net = checks_loop.Net([module.Linear(4, 2, rng=0, dtype=np.float64)])
        net.params["0.W"][...] = 0
        net.params["0.W"][0] = [-5, 5]
        best = {"epoch": 1, "val_acc": 1.0 - acc_offset, "params": {k: v.copy() for k, v in net.params.items()}}
        if not reload:
            net.params["0.W"][0] = [5, -5]
        return net, [{"epoch": 1, "train_loss": 0.1, "val_loss": 0.1, "val_acc": best["val_acc"]}], best
    return run


def check_fit(pair):
    check_best_weights(*pair)


VAL = np.random.default_rng(0).standard_normal((200, 4))
Y_VAL = (VAL[:, 0] > 0).astype(int)

BUGS = {
    "dropout-not-scaled": (check_dropout, DropoutNotScaled, ["not scaled", "1 - p"]),
    "dropout-active-in-eval": (check_dropout, DropoutInEval, ["eval mode drops units", "self.training"]),
    "dropout-p-kept": (check_dropout, DropoutKeepsP, ["DROPPING", "rng.random(x.shape) >= p"]),
    "dropout-new-mask-in-backward": (check_dropout, DropoutNewMaskInBackward, ["new random mask in backward", "self.mask"]),
    "dropout-same-mask": (check_dropout, DropoutSameMask, ["same units on every call", "self.rng"]),
    "dropout-test-time-scaling": (check_dropout, DropoutTestTimeScaling, ["non-inverted", "identity"]),
    "adam-no-bias-correction": (check_adam, adam(correction=False), ["bias correction is missing", "1 - beta1**t"]),
    "adam-t-per-parameter": (check_adam, adam(per_param=True), ["once per parameter"]),
    "adam-t-after-use": (check_adam, adam(t_after=True), ["t is still 0", "division by zero"]),
    "adam-abs-not-square": (check_adam, adam(square=False), ["averages |g|", "g**2"]),
    "adam-no-sqrt": (check_adam, adam(sqrt=False), ["square root is missing"]),
    "adam-rebinds": (check_adam, adam(in_place=False), ["replaced params['0.W']", "-="]),
    "cosine-double-period": (check_cosine, cosine(lambda t, lr, T, m: m + (lr - m) * (1 + np.cos(np.pi * t / (2 * T))) / 2),
                             ["2 * total_steps"]),
    "cosine-no-clamp": (check_cosine, cosine(lambda t, lr, T, m: m + (lr - m) * (1 + np.cos(np.pi * t / T)) / 2),
                        ["rises again after total_steps", "min(t, total_steps)"]),
    "cosine-min-lr-ignored": (check_cosine, cosine(lambda t, lr, T, m: lr * (1 + np.cos(np.pi * min(t, T) / T)) / 2),
                              ["min_lr is ignored"]),
    "cosine-no-half-shift": (check_cosine, cosine(lambda t, lr, T, m: m + (lr - m) * np.cos(np.pi * min(t, T) / T)),
                             ["(1 + cos(pi * t / total_steps)) / 2"]),
    "loop-no-shuffle": (check_train_epoch, loop(no_shuffle=True), ["not shuffled", "rng.permutation"]),
    "loop-shuffled-apart": (check_train_epoch, loop(apart=True), ["two different orders"]),
    "loop-last-batch-dropped": (check_train_epoch, loop(drop_last=True), ["made 3 steps", "last partial batch"]),
    "loop-lr-after-step": (check_train_epoch, loop(lr_after=True), ["learning rate is set after the step"]),
    "loop-l2-loss-only": (check_train_epoch, loop(l2_grad=False), ["added to the loss but not to the gradient"]),
    "loop-l2-grad-only": (check_train_epoch, loop(l2_loss=False), ["added to the gradient but not to the loss"]),
    "loop-eval-mode": (check_train_epoch, loop(train_mode=False), ["net.train()", "dropout inactive"]),
    "loop-accumulated": (check_train_epoch, loop(accumulate=True), ["accumulated across batches"]),
    "loop-clock-restarts": (check_train_epoch, loop(restart_clock=True), ["clock restarts at 0"]),
    "loop-returns-steps": (check_train_epoch, loop(return_steps=True), ["it = 4", "counts from 0"]),
    "fit-references": (check_fit, fit_with(references=True), ["references", "v.copy()"]),
    "fit-last-epoch": (check_fit, fit_with(last=True), ["best['epoch'] is 5", "last epoch was kept"]),
    "fit-by-val-loss": (check_fit, fit_with(by_loss=True), ["lowest validation LOSS"]),
    "fit-not-reloaded": (check_fit, fit_with(no_reload=True), ["not loaded back"]),
    "fit-load-rebinds": (check_fit, fit_with(rebind=True), ["rebinds net.params[name]", "[...] ="]),
    "evaluate-train-mode": (check_evaluate, evaluate_with(train_mode=True), ["train mode", "net.eval()"]),
    "evaluate-mean-of-batch-means": (check_evaluate, evaluate_with(batch_mean=True), ["weight each batch's loss"]),
    "evaluate-count": (check_evaluate, evaluate_with(count=True), ["number of correct predictions"]),
    "evaluate-swapped": (check_evaluate, evaluate_with(swapped=True), ["(accuracy, loss)"]),
    "confusion-transposed": (check_confusion, confusion_transposed, ["transposed", "TRUE class"]),
    "confusion-sized-by-data": (check_confusion, confusion_sized_by_data, ["read from the data", "num_classes"]),
    "confusion-normalised": (check_confusion, confusion_normalised, ["normalised rows"]),
    "curves-no-x": (check_curves, curves(no_x=True), ["x values run 0..4", "epochs"]),
    "curves-one-axes": (check_curves, curves(one_axes=True), ["accuracy shares an axes"]),
    "curves-no-labels": (check_curves, curves(no_labels=True), ["no x label", "set_xlabel"]),
    "curves-no-legend": (check_curves, curves(no_legend=True), ["no legend", "ax.legend()"]),
    "curves-no-val-loss": (check_curves, curves(skip_val_loss=True), ["validation loss curve is missing"]),
    "curves-epoch-left-out": (check_curves, curves(drop_first=True), ["4 points for 5 epochs"]),
    "curves-no-return": (check_curves, curves(drop_first=None), ["returned NoneType", "return fig"]),
    "images-rows": (check_weight_images, images(rows=True), ["W.reshape(M, 28, 28)", "W[:, j]"]),
    "images-transposed": (check_weight_images, images(transposed=True), ["image is transposed"]),
    "images-count": (check_weight_images, images(count_off=-4), ["drew 12 images, expected 16"]),
    "images-no-return": (check_weight_images, images(no_return=True), ["return fig"]),
    "trained-not-reloaded": (lambda fn: check_trained(fn, VAL, Y_VAL, 0.5), trained(reload=False),
                             ["scores 0.0000", "recorded 1.0000", "not loaded back"]),
    "trained-below-bar": (lambda fn: check_trained(fn, VAL, Y_VAL, 1.1), trained(), ["below the bar 1.1"]),
}


@pytest.mark.parametrize("name", BUGS)
def test_every_planted_bug_is_named(name):
    check, buggy, words = BUGS[name]
    before = set(plt.get_fignums())  # figures another test left open are not this check's
    with pytest.raises(AssertionError) as info:
        check(buggy)
    message = str(info.value)
    for word in words:
        assert word in message, f"{name}: {word!r} not in {message!r}"
    assert not set(plt.get_fignums()) - before, "a check left its figure open"


def test_each_bug_gets_its_own_message():
    messages = {}
    for name, (check, buggy, _) in BUGS.items():
        with pytest.raises(AssertionError) as info:
            check(buggy)
        messages.setdefault(str(info.value), []).append(name)
    assert all(len(names) == 1 for names in messages.values()), [n for n in messages.values() if len(n) > 1]


def test_the_end_to_end_check_keeps_the_run_and_skips_while_a_part_is_missing(capsys):
    keep = {}
    check_trained(trained(), VAL, Y_VAL, 0.9, keep=keep)
    assert capsys.readouterr().out.startswith("correct: ") and set(keep) == {"net", "history", "best"}

    def unwritten():
        raise NotImplementedError("fit")

    check_trained(unwritten, VAL, Y_VAL, 0.9)
    assert capsys.readouterr().out == ("not implemented yet: write fit (the end-to-end run uses every part above; "
                                       "skipped until they are written), then rerun this cell\n")
