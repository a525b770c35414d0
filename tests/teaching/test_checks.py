"""The exercise checks: each passes the reference and names each planted bug with its own hint."""
import itertools
import runpy
from pathlib import Path

import numpy as np
import pytest

import module
from utils.teaching import checks_common as checks
from utils.teaching.checks_layers import check_im2col, check_layer, reference_im2col
from utils.teaching.checks_training import check_l2, check_loss, check_schedule, check_search_loop, check_update

# ---------------------------------------------------------------- right answers (the references)

def softmax_cross_entropy(logits, y):
    loss = module.SoftmaxCrossEntropy()
    return loss.forward(logits, y), loss.backward()


# The teacher's answers to notebook 06 serve as the right answers here too.
SOLUTIONS = runpy.run_path(str(Path(__file__).resolve().parents[2] / "notebooks" / "solutions" / "06_exercises.py"),
                           init_globals={"np": np, "Layer": module.Layer})
l2_regularization, sgd_momentum = SOLUTIONS["l2_regularization"], SOLUTIONS["sgd_momentum"]
step_decay, exponential_decay = SOLUTIONS["step_decay"], SOLUTIONS["exponential_decay"]


def grid_search(space, score):
    results = [{**point, "val_acc": score(**point)}
               for point in (dict(zip(space, values)) for values in itertools.product(*space.values()))]
    return sorted(results, key=lambda r: r["val_acc"], reverse=True)


def last_max_pool_backward(self, dout):
    """Ties to the last maximum of each window instead of the first: also a right gradient."""
    n, c, h, w = self.x.shape
    windows = self.x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    last = 3 - np.argmax(windows[..., ::-1], axis=-1)
    dx = np.zeros_like(windows)
    np.put_along_axis(dx, last[..., None], dout[..., None], axis=-1)
    return dx.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


REFERENCES = [
    (check_layer, module.Linear), (check_layer, module.ReLU), (check_layer, module.Sigmoid),
    (check_layer, module.Tanh), (check_layer, module.MaxPool2D), (check_layer, module.Conv2D),
    (check_im2col, reference_im2col), (check_loss, softmax_cross_entropy), (check_l2, l2_regularization),
    (check_update, sgd_momentum), (check_schedule, step_decay), (check_schedule, exponential_decay),
    (check_search_loop, grid_search),
    (check_layer, type("MaxPool2D", (module.MaxPool2D,), {"backward": last_max_pool_backward})),
]


@pytest.mark.parametrize("check, solution", REFERENCES, ids=[f"{c.__name__}-{s.__name__}" for c, s in REFERENCES])
def test_every_check_passes_the_reference(check, solution, capsys):
    check(solution)
    out = capsys.readouterr().out
    assert out.startswith("correct: relative error ") and out.count("\n") == 1, out


# ---------------------------------------------------------------- planted bugs

def layer(base, **methods):
    """A subclass of module's layer, same name (so check_layer finds its reference), methods replaced."""
    return type(base.__name__, (base,), methods)


def linear_backward(dW=None, db=None, dx=None):
    def backward(self, dout, need_dx=True):
        x, W = self.x, self.params["W"]
        self.grads["W"] = x.T @ dout if dW is None else dW(x, dout)
        self.grads["b"] = dout.sum(axis=0) if db is None else db(dout)
        return dout @ W.T if dx is None else dx(dout, W)
    return backward


def rebinding_backward(self, dout, need_dx=True):
    """Right numbers, but new arrays in the dict instead of the layer's own."""
    self.grads["W"] = self.x.T @ dout
    self.grads["b"] = dout.sum(axis=0)
    return dout @ self.params["W"].T


def accumulating_backward(self, dout, need_dx=True):
    self.grads["W"] += self.x.T @ dout
    self.grads["b"] += dout.sum(axis=0)
    return dout @ self.params["W"].T


def relu_in_place_backward(self, dout, need_dx=True):
    dout[self.out <= 0] = 0
    return dout


def relu_in_place_forward(self, x):
    np.maximum(x, 0, out=x)
    self.out = x
    return x


def im2col_position_first(x, k, s, p):
    """Columns in (output row, output column, image) order, module.Conv2D's memory order."""
    cols = reference_im2col(x, k, s, p)
    ho = (x.shape[2] + 2 * p - k) // s + 1
    return cols.reshape(-1, len(x), ho, ho).transpose(0, 2, 3, 1).reshape(cols.shape)


def schedule(name, formula):
    fn = lambda t, lr, f, s: formula(t, lr, f, s)  # noqa: E731
    fn.__name__ = name
    return fn


def momentum(rule):
    def step(w, dw, v, lr, m):
        return rule(w, dw, v, lr, m)
    return step


def buggy_search(order=None, pairs=zip):
    def search(space, score):
        results = []
        for values in pairs(*space.values()):
            point = dict(zip(space, values))
            results.append({**point, "val_acc": score(**point)})
        return results if order is None else order(results)
    return search


def l2_with(penalty=None, grad=None):
    def fn(params, lam):
        p, g = l2_regularization(params, lam)
        return (p if penalty is None else penalty(params, lam)), (g if grad is None else grad(params, lam))
    return fn


def loss_with(loss=None, grad=None, shift=True):
    def fn(logits, y):
        z = logits - logits.max(axis=1, keepdims=True) if shift else logits
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        n, onehot = len(y), np.eye(logits.shape[1])[y]
        return ((-np.log(p[np.arange(n), y]).mean() if loss is None else loss(p, y, n)),
                ((p - onehot) / n if grad is None else grad(p, onehot, n)))
    return fn


def flipped_forward(self, x):
    """A true convolution: the kernel turned by 180 degrees."""
    W = self.params["W"]
    self.params["W"] = W[..., ::-1, ::-1].copy()
    try:
        return module.Conv2D.forward(self, x)
    finally:
        self.params["W"] = W


SUM_W = lambda params: sum(float(np.sum(v ** 2)) for k, v in params.items() if k.endswith(".W"))  # noqa: E731
SUM_ALL = lambda params: sum(float(np.sum(v ** 2)) for v in params.values())  # noqa: E731


def weights_times(params, factor):
    return {k: factor * v for k, v in params.items() if k.endswith(".W")}

BUGS = {
    "linear-dW-divided-by-N": (check_layer, layer(module.Linear, backward=linear_backward(
        dW=lambda x, d: x.T @ d / len(x))), ["grads['W']", "N = 4 times too small"]),
    "linear-dW-transposed": (check_layer, layer(module.Linear, backward=linear_backward(dW=lambda x, d: d.T @ x)),
                             ["grads['W']", "transposed"]),
    "linear-db-wrong-axis": (check_layer, layer(module.Linear, backward=linear_backward(db=lambda d: d.sum(axis=1))),
                             ["grads['b']", "wrong axis", "axis 0"]),
    "linear-db-not-summed": (check_layer, layer(module.Linear, backward=linear_backward(db=lambda d: d)),
                             ["grads['b']", "not summed over the batch"]),
    "linear-dx-sign": (check_layer, layer(module.Linear, backward=linear_backward(dx=lambda d, W: -d @ W.T)),
                       ["dx", "sign error"]),
    "linear-no-bias": (check_layer, layer(module.Linear, forward=lambda self, x: (
        setattr(self, "x", x), x @ self.params["W"])[1]),
                       ["forward", "bias is missing"]),
    "linear-updates-weights": (check_layer, layer(module.Linear, backward=lambda self, d, need_dx=True: (
        module.Linear.backward(self, d), self.params["W"].__isub__(0.1 * self.grads["W"]))[0]),
        ["changed self.params['W']", "only writes self.grads"]),
    "relu-no-mask": (check_layer, layer(module.ReLU, backward=lambda self, d, need_dx=True: d),
                     ["ReLU.backward", "ReLU mask is missing", "input <= 0"]),
    "sigmoid-at-input": (check_layer, layer(module.Sigmoid, forward=lambda self, x: (
        setattr(self, "x", x), module.Sigmoid.forward(self, x))[1],
        backward=lambda self, d, need_dx=True: d * self.x * (1 - self.x)), ["Sigmoid.backward", "input x instead"]),
    "tanh-no-square": (check_layer, layer(module.Tanh, backward=lambda self, d, need_dx=True: d * (1 - self.out)),
                       ["Tanh.backward", "square is missing"]),
    "maxpool-ties-copied": (check_layer, layer(module.MaxPool2D, backward=lambda self, d, need_dx=True: (
        d.repeat(2, axis=2).repeat(2, axis=3) * (self.x == self.out.repeat(2, axis=2).repeat(2, axis=3)))),
        ["MaxPool2D.backward", "every tied position"]),
    "maxpool-no-mask": (check_layer, layer(module.MaxPool2D, backward=lambda self, d, need_dx=True: (
        d.repeat(2, axis=2).repeat(2, axis=3))), ["MaxPool2D.backward", "no max mask"]),
    "conv-flipped-kernel": (check_layer, layer(module.Conv2D, forward=flipped_forward), ["Conv2D.forward", "flipped"]),
    "conv-db-wrong-axes": (check_layer, layer(module.Conv2D, backward=lambda self, d, need_dx=True: (
        module.Conv2D.backward(self, d), self.grads.__setitem__("b", d.sum(axis=(1, 2, 3))))[0]),
        ["grads['b']", "wrong axes"]),
    "im2col-no-padding": (check_im2col, lambda x, k, s, p: reference_im2col(x, k, s, 0), ["not padded"]),
    "im2col-channel-last": (check_im2col, lambda x, k, s, p: reference_im2col(x, k, s, p).reshape(
        x.shape[1], k, k, -1).transpose(1, 2, 0, 3).reshape(x.shape[1] * k * k, -1),
        ["(kernel row, kernel column, channel)"]),
    "im2col-rows-per-position": (check_im2col, lambda x, k, s, p: reference_im2col(x, k, s, p).T,
                                 ["transposed layout", "out = W_flat @ cols"]),
    "im2col-columns-position-first": (check_im2col, lambda x, k, s, p: im2col_position_first(x, k, s, p),
                                      ["(output row, output column, image)"]),
    "linear-grads-rebound": (check_layer, layer(module.Linear, backward=rebinding_backward),
                             ["replaced self.grads['W'] with a new array", "self.grads['W'][...] =", "stale"]),
    "linear-grads-accumulate": (check_layer, layer(module.Linear, backward=accumulating_backward),
                                ["twice the gradient", "(+=)", "self.grads['W'][...] ="]),
    "linear-dx-untransposed": (check_layer, layer(module.Linear, backward=linear_backward(dx=lambda d, W: d @ W)),
                               ["Linear.backward raised ValueError", "dx = dout @ W.T", "(4, 3) @ W.T (3, 5)"]),
    "linear-dW-untransposed": (check_layer, layer(module.Linear, backward=linear_backward(dW=lambda x, d: x @ d)),
                               ["Linear.backward raised ValueError", "dW = x.T @ dout"]),
    "relu-dout-in-place": (check_layer, layer(module.ReLU, backward=relu_in_place_backward),
                           ["ReLU.backward changed dout in place", "dx = dout * (x > 0)"]),
    "relu-x-in-place": (check_layer, layer(module.ReLU, forward=relu_in_place_forward),
                        ["ReLU.forward changed its input x in place"]),
    "loss-summed": (check_loss, loss_with(loss=lambda p, y, n: -np.log(p[np.arange(n), y]).sum()),
                    ["the loss", "N = 6 times too large"]),
    "loss-grad-not-divided": (check_loss, loss_with(grad=lambda p, onehot, n: p - onehot),
                              ["dlogits", "missing division by the batch size"]),
    "loss-grad-no-onehot": (check_loss, loss_with(grad=lambda p, onehot, n: p / n), ["dlogits", "not subtracted"]),
    "loss-grad-sign": (check_loss, loss_with(grad=lambda p, onehot, n: (onehot - p) / n), ["dlogits", "sign error"]),
    "loss-no-max-shift": (check_loss, loss_with(shift=False), ["near 1000", "max-shift", "overflow"]),
    "l2-on-biases": (check_l2, l2_with(penalty=lambda ps, lam: lam / 2 * SUM_ALL(ps)),
                     ["penalty", "applied to biases"]),
    "l2-bias-gradient": (check_l2, l2_with(grad=lambda ps, lam: {k: lam * v for k, v in ps.items()}),
                         ["grads['0.b']", "applied to biases"]),
    "l2-grad-2-lambda": (check_l2, l2_with(grad=lambda ps, lam: weights_times(ps, 2 * lam)),
                         ["grads['0.W']", "2x too large", "l2_lambda * W"]),
    "l2-grad-half-lambda": (check_l2, l2_with(grad=lambda ps, lam: weights_times(ps, lam / 2)),
                            ["grads['0.W']", "missing its factor"]),
    "l2-penalty-no-half": (check_l2, l2_with(penalty=lambda ps, lam: lam * SUM_W(ps)), ["penalty", "factor 1/2"]),
    "momentum-sign": (check_update, momentum(lambda w, dw, v, lr, m: (w + (m * v + lr * dw), m * v + lr * dw)),
                      ["step 1", "sign error", "uphill"]),
    "momentum-order": (check_update, momentum(lambda w, dw, v, lr, m: (w + v, m * v - lr * dw)),
                       ["step 1", "order of the update"]),
    "momentum-missing": (check_update, momentum(lambda w, dw, v, lr, m: (w - lr * dw, -lr * dw)),
                         ["step 2", "momentum term is missing"]),
    "step-every-iteration": (check_schedule, schedule("step_decay", lambda t, lr, f, s: lr * f ** t),
                             ["every iteration instead of every decay_steps"]),
    "step-smooth": (check_schedule, schedule("step_decay", lambda t, lr, f, s: lr * f ** (t / s)),
                    ["integer division"]),
    "exponential-staircase": (check_schedule, schedule("exponential_decay", lambda t, lr, f, s: lr * f ** (t // s)),
                              ["staircase"]),
    "search-zip": (check_search_loop, buggy_search(order=lambda r: sorted(r, key=lambda x: -x["val_acc"])),
                   ["zip", "itertools.product"]),
    "search-worst-first": (check_search_loop, buggy_search(
        order=lambda r: sorted(r, key=lambda x: x["val_acc"]), pairs=itertools.product),
        ["worst first", "reverse=True"]),
}


@pytest.mark.parametrize("name", BUGS)
def test_every_planted_bug_is_named_with_its_hint(name):
    check, buggy, words = BUGS[name]
    with pytest.raises(AssertionError) as info:
        check(buggy)
    message = str(info.value)
    assert "Likely cause" in message or "changed self.params" in message, message
    for word in words:
        assert word in message, f"{name}: {word!r} not in {message!r}"


def test_hints_differ_from_bug_to_bug():
    messages = set()
    for check, buggy, _ in BUGS.values():
        with pytest.raises(AssertionError) as info:
            check(buggy)
        messages.add(str(info.value))
    assert len(messages) == len(BUGS)


def test_unwritten_code_gets_the_friendly_message_and_no_error(capsys):
    class Linear(module.Linear):
        def backward(self, dout):
            raise NotImplementedError

    def sgd_momentum(w, dw, v, lr, momentum):
        raise NotImplementedError

    check_layer(Linear)
    check_update(sgd_momentum)
    with checks.skip_if_unwritten():
        sgd_momentum(0, 0, 0, 0, 0)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["not implemented yet: write Linear.backward, then rerun this cell",
                     "not implemented yet: write sgd_momentum, then rerun this cell",
                     "not implemented yet: write the function above, then rerun this cell"]


def test_a_crash_in_student_code_is_reported_with_the_blank_it_came_from():
    class Linear(module.Linear):
        def forward(self, x):
            return x @ self.params["W"].T

    with pytest.raises(AssertionError, match=r"Linear.forward raised ValueError.*shape"):
        check_layer(Linear)


def test_an_instance_is_checked_at_its_own_sizes_and_kind_names_the_reference(capsys):
    check_layer(module.Linear(7, 2))
    check_layer(module.Conv2D(1, 4, 5, stride=2, padding=2))
    check_layer(module.MaxPool2D(3))
    check_layer(type("MyDense", (module.Linear,), {}), kind="Linear")
    assert capsys.readouterr().out.count("correct: ") == 4
    with pytest.raises(ValueError, match="kind='Linear'"):
        check_layer(type("MyDense", (module.Linear,), {}))


class RaisingInit(module.Linear):
    def __init__(self, in_features, out_features):
        raise TypeError("unsupported operand")


class NoParams(module.Linear):
    def __init__(self, in_features, out_features):
        self.W = np.zeros((in_features, out_features))  # no super().__init__(): no self.params


def texts(w, dw, v, lr, momentum):
    return "w", "v"


def forgets_return(t, lr, decay_factor, decay_steps):
    lr * decay_factor ** (t // decay_steps)


def step_as_text(t, lr, decay_factor, decay_steps):
    return f"{lr * decay_factor ** (t // decay_steps)}"


@pytest.mark.parametrize("run, words", [
    (lambda: check_layer(type("Linear", (RaisingInit,), {})),
     ["Linear.__init__ raised TypeError on the line `raise TypeError(", "unsupported operand", "a mistake in __init__"]),
    (lambda: check_layer(type("Linear", (NoParams,), {})),
     ["Linear.__init__ set no self.params dict", "super().__init__()"]),
    (lambda: check_update(texts), ["sgd_momentum (its w at step 1) returned str 'w'", "an array of numbers of shape (4, 3)"]),
    (lambda: check_schedule(forgets_return, kind="step"),
     ["forgets_return(t=0, ...) returned None: did you forget `return`?"]),
    (lambda: check_schedule(step_as_text, kind="step"), ["step_as_text(t=0, ...) returned str '0.1'", "a number"]),
], ids=["init-raises", "no-params", "step-returns-text", "schedule-returns-none", "schedule-returns-text"])
def test_what_the_students_code_did_wrong_is_named(run, words):
    with pytest.raises(AssertionError) as e:
        run()
    for w in words:
        assert w in str(e.value), str(e.value)
    assert "NaN or inf" not in str(e.value)
