"""Checks for the exercises (notebook 06) that say which output is wrong and why.

Each ``check_*`` runs the student's code and the project's reference (module.py,
utils/optim.py) on the same small float64 inputs, with non-zero random weights and biases.
- right: it prints one line, "correct: relative error 3e-10 (...)";
- wrong: it raises AssertionError naming the output or gradient that differs and the
  likely cause, recognised by comparing the student's result with the results of known
  mistakes (a missing division by N, a transposed dW, a missing ReLU mask, ...);
- not written yet (NotImplementedError): it prints "not implemented yet: write ..., then
  rerun this cell" and returns, so that the notebook as handed out runs top to bottom.
"""
import contextlib
import functools
import itertools
import math
import warnings

import numpy as np

import module
from utils.gradcheck import check_layer as gradient_check, numerical_gradient, rel_error
from utils.optim import SGD, l2_penalty, l2_regularize, lr_schedule

TOL = 1e-7  # float64 against float64: a right answer agrees to ~1e-15


class NotWrittenYet(Exception):
    """The student's code raised NotImplementedError; what names the blank."""


def _checker(fn):
    """Turn NotWrittenYet into the friendly one-line message; let AssertionError through."""
    @functools.wraps(fn)
    def check(*args, **kwargs):
        try:
            fn(*args, **kwargs)
        except NotWrittenYet as e:
            print(f"not implemented yet: write {e}, then rerun this cell")
    return check


@contextlib.contextmanager
def skip_if_unwritten():
    """Run a block that uses the student's code; print the friendly message if a blank is still empty."""
    try:
        yield
    except NotImplementedError as e:
        print(f"not implemented yet: write {str(e) or 'the function above'}, then rerun this cell")


def _call(what, fn, *args):
    """fn(*args); NotImplementedError becomes NotWrittenYet, any other error an AssertionError naming what."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args)
    except NotImplementedError:
        raise NotWrittenYet(what) from None
    except Exception as e:
        raise AssertionError(f"{what} raised {type(e).__name__}: {e}. Likely cause: an array of the "
                             f"wrong shape; print the shapes of the arrays on that line") from e


def _close(a, b):
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and rel_error(a, b) < TOL


def compare(what, got, want, n=None, extra=()):
    """Return the relative error of got against want, or raise AssertionError with the likely cause.

    what: names the output, e.g. "Linear.backward: grads['W']"; want: the reference array;
    n: the batch size, so that a factor of N can be recognised; extra: (candidate, cause)
    pairs, the results of known mistakes, tried first.
    """
    def fail(cause):
        raise AssertionError(f"{what} is wrong. Likely cause: {cause}")

    if got is None:
        fail("it is None: a missing `return` (or the array was never assigned)")
    want = np.asarray(want, dtype=np.float64)
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        fail(f"expected an array of shape {want.shape}, got {type(got).__name__}")
    if _close(got, want):
        return rel_error(got, want)
    for candidate, cause in extra:
        if _close(got, np.asarray(candidate, dtype=np.float64)):
            fail(cause)
    if got.shape != want.shape:
        if got.ndim == 2 and got.T.shape == want.shape:
            fail(f"transposed: it has shape {got.shape}, the reference {want.shape}; a gradient has the shape "
                 "of what it is the gradient of (swap the operands of the product, or transpose them)")
        fail(f"shape mismatch: expected {want.shape}, got {got.shape}")
    if not np.all(np.isfinite(got)):
        fail("it contains NaN or inf (an overflow, or a division by zero)")
    if n and _close(got * n, want):
        fail(f"it is N = {n} times too small: an extra division by the batch size N")
    if n and _close(got, want * n):
        fail(f"it is N = {n} times too large: a missing division by the batch size N")
    if _close(-got, want):
        fail("a sign error: it is the reference times -1")
    if not np.any(got):
        fail("it is all zeros: was it ever computed (or assigned to the right name)?")
    nonzero = np.abs(want) > 1e-12
    ratio = got[nonzero] / want[nonzero] if nonzero.any() else np.array([])
    if ratio.size and np.allclose(ratio, ratio[0], rtol=1e-9) and not np.any(got[~nonzero]):
        fail(f"off by a constant factor {ratio[0]:.4g}")
    fail(f"it differs from the reference (relative error {rel_error(got, want):.1e}); compare your "
         "formula with the one in the markdown above, term by term")


def _correct(err, label):
    print(f"correct: relative error {err:.0e} ({label})")


# ---------------------------------------------------------------- layers

def _layer_cases(name, rng, like=None):
    """[(reference layer, constructor arguments, input)] for the layer called name: float64, N = 4.

    like: the student's instance, whose sizes (and stride, padding, kernel_size) the reference copies.
    """
    W = like.params.get("W") if like is not None and isinstance(getattr(like, "params", None), dict) else None
    if name == "Linear":
        d, m = np.shape(W) if W is not None and np.ndim(W) == 2 else (5, 3)
        return [(module.Linear(d, m, rng=rng, dtype=np.float64), [d, m], rng.standard_normal((4, d)))]
    if name in ("ReLU", "Sigmoid", "Tanh"):
        return [(getattr(module, name)(), [], 2 * rng.standard_normal((4, 5)))]
    if name == "MaxPool2D":  # the second input has ties: small integers, so windows hold equal maxima
        k = getattr(like, "kernel_size", getattr(like, "k", 2))
        return [(module.MaxPool2D(k), [k], rng.standard_normal((4, 3, 2 * k, 2 * k))),
                (module.MaxPool2D(k), [k], rng.integers(0, 3, (4, 3, 2 * k, 2 * k)).astype(np.float64))]
    if name == "Conv2D":
        f, c, k = np.shape(W)[:3] if W is not None and np.ndim(W) == 4 else (3, 2, 3)
        settings = ((1, 1), (2, 0)) if like is None else ((getattr(like, "stride", 1), getattr(like, "padding", 0)),)
        return [(module.Conv2D(c, f, k, stride=s, padding=p, rng=rng, dtype=np.float64), [c, f, k, s, p],
                 rng.standard_normal((4, c, k + 3, k + 3))) for s, p in settings]
    raise ValueError(f"check_layer knows Linear, ReLU, Sigmoid, Tanh, MaxPool2D and Conv2D, not {name!r}; "
                     "name the one to compare with: check_layer(layer, kind='Linear')")


def _forward_mistakes(name, ref, x, out):
    if name == "Linear":
        W, b = ref.params["W"], ref.params["b"]
        return [(x @ W, "the bias is missing: out = x @ W + b"), (x @ W - b, "the bias is subtracted: out = x @ W + b")]
    if name == "ReLU":
        return [(x, "nothing was clipped: out = max(x, 0)"), (np.abs(x), "|x| instead of max(x, 0)")]
    if name == "Sigmoid":
        return [(1 / (1 + np.exp(x)), "a sign error inside exp: sigmoid(x) = 1 / (1 + exp(-x))")]
    if name == "Conv2D":
        flipped = module.Conv2D(ref.in_channels, ref.out_channels, ref.kernel_size, ref.stride, ref.padding,
                                dtype=np.float64)
        flipped.params = {"W": ref.params["W"][..., ::-1, ::-1].copy(), "b": ref.params["b"]}
        return [(flipped.forward(x), "the kernel is flipped: deep-learning 'convolution' is cross-correlation, "
                 "multiply the window by W as it is"), (out - ref.params["b"][:, None, None], "the bias is missing")]
    return []


def _backward_mistakes(name, ref, x, dout, key):
    out = ref.out
    if name == "Linear" and key == "b":
        return [(dout.sum(axis=1), "the bias gradient is summed over the wrong axis: sum dout over the batch, axis 0"),
                (dout, "the bias gradient is not summed over the batch: db = dout.sum(axis=0)")]
    if name == "Conv2D" and key == "b":
        return [(dout.sum(axis=(1, 2, 3)), "the bias gradient is summed over the wrong axes: sum over batch, "
                 "rows and columns, axis=(0, 2, 3)"),
                (dout.sum(axis=0), "the bias gradient is summed over the batch only; sum over rows and columns "
                 "too, axis=(0, 2, 3)")]
    if key != "x":
        return []
    if name == "ReLU":
        return [(dout, "the ReLU mask is missing: the gradient is non-zero where the input <= 0; "
                 "dx = dout * (x > 0)"),
                (dout * (x <= 0), "the ReLU mask is inverted: pass the gradient where x > 0"),
                (dout * out, "multiplied by the output instead of the 0/1 mask (x > 0)")]
    if name == "Sigmoid":
        return [(dout * x * (1 - x), "the derivative is taken at the input x instead of the output "
                 "s = sigmoid(x): dx = dout * s * (1 - s)"),
                (dout * out, "the factor (1 - s) is missing: dx = dout * s * (1 - s)")]
    if name == "Tanh":
        return [(dout * (1 - x ** 2), "the derivative is taken at the input x instead of the output "
                 "t = tanh(x): dx = dout * (1 - t**2)"),
                (dout * (1 - out), "the square is missing: dx = dout * (1 - t**2)")]
    if name == "MaxPool2D":
        k = ref.kernel_size
        spread = dout.repeat(k, axis=2).repeat(k, axis=3)
        return [(spread, "no max mask: every position of the window got the gradient; only the maximum should"),
                (spread / k ** 2, "the gradient is spread evenly over the window (average pooling's gradient); "
                 "it belongs to the maximum only"),
                (spread * (x == out.repeat(k, axis=2).repeat(k, axis=3)),
                 "the max-pool gradient was copied to every tied position; a window with several equal maxima "
                 "must pass dout to one of them only (the first), or the gradient is multiplied")]
    return []


def _one_max_per_window(dx, x, dout, k):
    """True when every window passes its dout to exactly one of its maxima (any tie-break is fine)."""
    n, c, h, w = x.shape
    dx = np.asarray(dx, dtype=np.float64)
    win = lambda a: a.reshape(n, c, h // k, k, w // k, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, -1)
    xw, dw = win(x), win(dx)
    at_max = xw == xw.max(axis=-1, keepdims=True)
    return bool(np.all((dw == 0) | at_max) and np.allclose(dw.sum(axis=-1), dout)
                and np.all((dw != 0).sum(axis=-1) <= 1))


@_checker
def check_layer(layer, kind=None, seed=0):
    """Check a layer class (or instance) against module.py's layer of the same name (or kind).

    layer: the class (built here with the arguments the exercise gives) or an instance (its
    weights are replaced by the check's random ones). Checks forward, then backward: dx and
    every grads[k], and that backward leaves the weights alone. Prints "correct: ..." or
    raises AssertionError with the likely cause.
    """
    cls = layer if isinstance(layer, type) else type(layer)
    name = kind or cls.__name__
    rng = np.random.default_rng(seed)
    errors, checked = [], []
    for ref, args, x in _layer_cases(name, rng, None if isinstance(layer, type) else layer):
        if ref.params:  # non-zero biases: a backward that ignores them cannot pass
            ref.params["b"][:] = rng.standard_normal(ref.params["b"].shape)
        student = cls(*args) if isinstance(layer, type) else layer
        for k, p in ref.params.items():
            if k not in student.params or np.shape(student.params[k]) != p.shape:
                raise AssertionError(f"{name}.__init__: self.params[{k!r}] should have shape {p.shape}, got "
                                     f"{np.shape(student.params.get(k))}")
            student.params[k] = p.copy()
            student.grads[k] = np.zeros_like(p)
        want = ref.forward(x.copy())
        got = _call(f"{name}.forward", student.forward, x.copy())
        errors.append(compare(f"{name}.forward: the output", got, want, extra=_forward_mistakes(name, ref, x, want)))
        dout = rng.standard_normal(want.shape)
        before = {k: p.copy() for k, p in student.params.items()}
        dx = _call(f"{name}.backward", student.backward, dout.copy())
        want_dx = ref.backward(dout.copy())
        for k in before:
            if not np.array_equal(before[k], student.params[k]):
                raise AssertionError(f"{name}.backward changed self.params[{k!r}]. Likely cause: an update inside "
                                     "backward; backward only writes self.grads, the optimiser updates the weights")
        if name == "MaxPool2D" and np.shape(dx) == x.shape and _one_max_per_window(dx, x, dout, ref.kernel_size):
            want_dx = np.asarray(dx, dtype=np.float64)  # another tie-break than the reference's: also right
        errors.append(compare(f"{name}.backward: the returned dx", dx, want_dx, n=len(x),
                              extra=_backward_mistakes(name, ref, x, dout, "x")))
        for k in ref.params:
            errors.append(compare(f"{name}.backward: self.grads[{k!r}]", student.grads.get(k), ref.grads[k],
                                  n=len(x), extra=_backward_mistakes(name, ref, x, dout, k)))
        checked.append((student, x))
    # The verdict above compares with the reference; the number shown is the classic gradient
    # check, on the first case (no ties for MaxPool2D, where central differences would fail).
    with np.errstate(all="ignore"):
        err = max(gradient_check(*checked[0], rng=seed).values())
    _correct(err, f"{name} forward and backward, gradient check")


# ---------------------------------------------------------------- im2col

def reference_im2col(x, kernel_size, stride=1, padding=0):
    """x (N, C, H, W) -> cols (N * Ho * Wo, C * k * k): one row per output position, (n, row, col) order,
    its columns in (channel, kernel row, kernel column) order, as W.reshape(F, -1)."""
    k, s = kernel_size, stride
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    cols = np.empty((n, ho, wo, c, k, k), dtype=x.dtype)
    for i, j in itertools.product(range(ho), range(wo)):
        cols[:, i, j] = x[:, :, i * s:i * s + k, j * s:j * s + k]
    return cols.reshape(n * ho * wo, c * k * k)


@_checker
def check_im2col(fn, seed=0):
    """Check fn(x, kernel_size, stride, padding) -> cols (N * Ho * Wo, C * k * k) against reference_im2col."""
    x = np.random.default_rng(seed).standard_normal((2, 3, 5, 5))
    errs = []
    for k, s, p in ((3, 1, 1), (3, 2, 0), (2, 1, 0)):
        want = reference_im2col(x, k, s, p)
        n, c = x.shape[:2]
        reordered = want.reshape(len(want), c, k, k).transpose(0, 2, 3, 1).reshape(want.shape)
        extra = [(reordered, "the columns are in (kernel row, kernel column, channel) order; W.reshape(F, -1) "
                  "needs (channel, kernel row, kernel column)")]
        if p:
            extra.append((reference_im2col(x, k, s, 0), "the input was not padded: np.pad rows and columns by "
                          "`padding` on each side first"))
        if s > 1:
            extra.append((reference_im2col(x, k, 1, p), "the stride is ignored: window (i, j) starts at "
                          "row i * stride, column j * stride"))
        got = _call("im2col", fn, x.copy(), k, s, p)
        errs.append(compare(f"im2col(x, kernel_size={k}, stride={s}, padding={p})", got, want, extra=extra))
    _correct(max(errs), "im2col, three kernel/stride/padding settings")


# ---------------------------------------------------------------- loss

def _softmax_loss(logits, y, axis=1):
    """Loss and gradient of softmax cross-entropy with the softmax over axis (1 is right)."""
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    p = e / e.sum(axis=axis, keepdims=True)
    n = len(y)
    onehot = np.eye(logits.shape[1])[y]
    return -np.log(p[np.arange(n), y]).mean(), (p - onehot) / n, p, onehot


def _call_loss(fn, logits, y):
    result = _call("softmax_cross_entropy", fn, logits.copy(), y.copy())
    if not isinstance(result, tuple) or len(result) != 2:
        raise AssertionError("softmax_cross_entropy should return two things, (loss, dlogits); "
                             f"got {type(result).__name__}")
    return result


@_checker
def check_loss(fn, seed=0):
    """Check fn(logits, y) -> (loss, dlogits) against module.SoftmaxCrossEntropy.

    logits (N, C), y (N,) integer labels; loss is the mean over the batch of -log p[y],
    dlogits = (p - onehot(y)) / N. Also feeds logits near 1000, where exp overflows
    unless each row is shifted by its maximum first.
    """
    rng = np.random.default_rng(seed)
    n, c = 6, 5  # N differs from C, so a division by the wrong one is told apart
    logits, y = rng.standard_normal((n, c)), rng.integers(0, c, n)
    ref = module.SoftmaxCrossEntropy()
    want_loss = ref.forward(logits.copy(), y)
    want_grad = ref.backward()
    _, _, p, onehot = _softmax_loss(logits, y)
    cols_loss, cols_grad, _, _ = _softmax_loss(logits, y, axis=0)
    loss, grad = _call_loss(fn, logits, y)
    if np.ndim(loss) != 0:
        per_sample = -np.log(p[np.arange(n), y])
        cause = ("it is the loss of each sample: return their mean" if np.shape(loss) == (n,)
                 and np.allclose(loss, per_sample) else "the loss must be one number, the mean over the batch")
        raise AssertionError(f"softmax_cross_entropy: the loss has shape {np.shape(loss)}. Likely cause: {cause}")
    compare("softmax_cross_entropy: the loss", loss, want_loss, n=n, extra=[
        (cols_loss, "the softmax is taken over the wrong axis: normalise each row (axis=1), one row per image"),
        (-p[np.arange(n), y].mean(), "the log is missing: the loss is -log p[y]"),
        (want_loss / c, "divided by the number of classes C as well: divide by N only")])
    compare("softmax_cross_entropy: dlogits", grad, want_grad, n=n, extra=[
        (cols_grad, "the softmax is taken over the wrong axis: normalise each row (axis=1)"),
        (p / n, "the 1 at the true class is not subtracted: dlogits = (p - onehot(y)) / N"),
        ((p - onehot) / c, "divided by the number of classes C instead of the batch size N")])
    big = 1000 + 50 * logits  # exp(1000) overflows float64
    loss, grad = _call_loss(fn, big, y)
    want_loss = ref.forward(big.copy(), y)
    if not (np.all(np.isfinite(loss)) and np.all(np.isfinite(np.asarray(grad, dtype=np.float64)))):
        raise AssertionError("softmax_cross_entropy on logits near 1000 gives NaN or inf. Likely cause: softmax "
                             "without the max-shift overflows (exp(1000) = inf); subtract each row's maximum "
                             "before exp, which leaves the probabilities unchanged")
    compare("softmax_cross_entropy on logits near 1000: the loss", loss, want_loss)
    compare("softmax_cross_entropy on logits near 1000: dlogits", grad, ref.backward())
    x = logits.copy()
    err = rel_error(np.asarray(_call_loss(fn, x, y)[1], dtype=np.float64),
                    numerical_gradient(lambda: float(fn(x.copy(), y)[0]), x))
    _correct(err, "softmax cross-entropy, gradient check; no overflow on logits near 1000")


# ---------------------------------------------------------------- L2

def _tiny_model(seed):
    model = module.mlp([5, 4, 3], rng=seed, dtype=np.float64)
    for _, _, p, _ in model.parameters():  # non-zero biases: penalising them must show
        p[...] = np.random.default_rng(seed).standard_normal(p.shape)
    return model


@_checker
def check_l2(fn, l2_lambda=0.1, seed=0):
    """Check fn(params, l2_lambda) -> (penalty, grads) against utils.optim's L2.

    params: {"0.W": ..., "0.b": ..., "2.W": ..., "2.b": ...}, as Sequential.params; penalty =
    l2_lambda / 2 * sum of W**2 over the weights (names ending ".W", biases are not penalised);
    grads: {name: gradient of the penalty}, l2_lambda * W for weights (biases: zeros, or left out).
    """
    model = _tiny_model(seed)
    params = {k: v.copy() for k, v in model.params.items()}
    result = _call("l2_regularization", fn, {k: v.copy() for k, v in params.items()}, l2_lambda)
    if not isinstance(result, tuple) or len(result) != 2 or not isinstance(result[1], dict):
        raise AssertionError("l2_regularization should return (penalty, grads), grads a dict name -> array")
    penalty, grads = result
    weights = sum(float(np.sum(v ** 2)) for k, v in params.items() if k.endswith(".W"))
    everything = sum(float(np.sum(v ** 2)) for v in params.values())
    err = compare("l2_regularization: the penalty", penalty, l2_penalty(model, l2_lambda), extra=[
        (l2_lambda / 2 * everything, "L2 applied to biases: penalise only the weights (names ending in '.W')"),
        (l2_lambda * everything, "L2 applied to biases (penalise the weights only), and the 1/2 is missing"),
        (l2_lambda * weights, "the penalty is missing its factor 1/2: it is l2_lambda / 2 * sum(W**2) "
         "(that 1/2 makes the gradient l2_lambda * W)"),
        (l2_lambda / 2 * sum(np.sqrt(np.sum(v ** 2)) for k, v in params.items() if k.endswith(".W")),
         "the norm is not squared: sum(W**2), not sqrt(sum(W**2))")])
    for _, _, _, g in model.parameters():
        g[...] = 0
    l2_regularize(model, l2_lambda)
    for k, p in params.items():
        got = grads.get(k, np.zeros_like(p))
        if k.endswith(".b"):
            if got is not None and np.any(got):
                raise AssertionError(f"l2_regularization: grads[{k!r}] is not zero. Likely cause: L2 applied to "
                                     "biases; only the weights (names ending in '.W') are penalised")
            continue
        err = max(err, compare(f"l2_regularization: grads[{k!r}]", got, model.grads[k], extra=[
            (2 * l2_lambda * p, "the gradient is 2x too large: with the penalty l2_lambda / 2 * sum(W**2) "
             "the gradient is l2_lambda * W"),
            (l2_lambda / 2 * p, "the gradient is missing its factor: d/dW of l2_lambda / 2 * sum(W**2) is "
             "l2_lambda * W, not l2_lambda / 2 * W")]))
    _correct(err, "L2 penalty and its gradient, biases not penalised")


# ---------------------------------------------------------------- SGD with momentum

def _momentum_variant(w, grads, lr, m, variant):
    """The weights after len(grads) steps of a (mistaken) momentum rule, from zero velocity."""
    v = np.zeros_like(w)
    for g in grads:
        if variant == "order":
            w, v = w + v, m * v - lr * g
            continue
        v = {"sign": m * v + lr * g, "no_momentum": -lr * g, "momentum_sign": -m * v - lr * g,
             "dampening": m * v - (1 - m) * lr * g}[variant]
        w = w + v
    return w


@_checker
def check_update(step_fn, lr=0.1, momentum=0.9, seed=0):
    """Check step_fn(w, dw, v, lr, momentum) -> (w, v), one SGD-with-momentum step, against utils.optim.SGD.

    Three steps from v = 0 with three different gradients; the weights after each step must
    match v <- momentum * v - lr * dw; w <- w + v. (Only w is compared: storing the velocity
    with the other sign, or lr applied to it, are equally right.)
    """
    rng = np.random.default_rng(seed)
    model = module.Sequential([module.Linear(4, 3, rng=rng, dtype=np.float64)])
    w0 = model.params["0.W"].copy()
    grads = [rng.standard_normal(w0.shape) for _ in range(3)]
    opt = SGD(lr, momentum=momentum)
    w, v, err = w0.copy(), np.zeros_like(w0), 0.0
    for t, g in enumerate(grads, 1):
        model.grads["0.W"][...] = g
        model.grads["0.b"][...] = 0
        opt.step(model)
        result = _call("sgd_momentum", step_fn, w.copy(), g.copy(), v.copy(), lr, momentum)
        if not isinstance(result, tuple) or len(result) != 2:
            raise AssertionError("sgd_momentum should return (w, v), the new weights and the new velocity")
        w, v = (np.asarray(a, dtype=np.float64) for a in result)
        err = max(err, compare(f"sgd_momentum: the weights after step {t}", w, model.params["0.W"], extra=[
            (_momentum_variant(w0, grads[:t], lr, momentum, "sign"), "a sign error: the weights move uphill; "
             "v = momentum * v - lr * dw, then w = w + v"),
            (_momentum_variant(w0, grads[:t], lr, momentum, "order"), "the order of the update: w moved with "
             "the old velocity; update v first, then w = w + (the new) v"),
            (_momentum_variant(w0, grads[:t], lr, momentum, "no_momentum"), "the momentum term is missing: "
             "v = momentum * v - lr * dw keeps part of the previous step"),
            (_momentum_variant(w0, grads[:t], lr, momentum, "momentum_sign"), "the momentum sign: it is "
             "+momentum * v, the velocity keeps its direction"),
            (_momentum_variant(w0, grads[:t], lr, momentum, "dampening"), "the gradient is scaled by "
             "(1 - momentum): that is an average, not the momentum update v = momentum * v - lr * dw")]))
    _correct(err, "SGD with momentum, three steps")


# ---------------------------------------------------------------- learning-rate schedules

@_checker
def check_schedule(fn, kind=None, lr=0.1, decay_factor=0.5, decay_steps=5):
    """Check fn(t, lr, decay_factor, decay_steps) -> the learning rate at iteration t.

    kind: "step" or "exponential"; by default read from the function's name.
    Compared with utils.optim.lr_schedule for t = 0 .. 3 * decay_steps.
    """
    kind = kind or ("step" if "step" in fn.__name__ else "exponential" if "exp" in fn.__name__ else None)
    if kind not in ("step", "exponential"):
        raise ValueError(f"check_schedule: say kind='step' or kind='exponential' (the name {fn.__name__!r} "
                         "does not tell)")
    t = np.arange(3 * decay_steps + 1)
    want = np.array([lr_schedule(lr, kind, decay_factor, decay_steps)(i) for i in t])
    got = np.array([_call(fn.__name__, fn, int(i), lr, decay_factor, decay_steps) for i in t], dtype=np.float64)
    f, s = decay_factor, decay_steps
    extra = [(lr * f ** t, f"the decay is applied every iteration instead of every decay_steps = {s}: "
              f"the exponent is t / decay_steps{' rounded down' if kind == 'step' else ''}, not t")]
    if kind == "step":
        extra += [(lr * f ** (t / s), "the decay is smooth: a step schedule uses integer division, t // decay_steps"),
                  (lr * f ** (t // s + 1), "decayed one step too early: at t = 0 the rate must be lr itself")]
    else:
        extra += [(lr * f ** (t // s), "the decay is a staircase: an exponential schedule uses t / decay_steps, "
                   "not t // decay_steps"),
                  (lr * np.exp(-f * t / s), "exp(-decay_factor * t / decay_steps) is another schedule: here the "
                   "rate is lr * decay_factor ** (t / decay_steps)")]
    _correct(compare(f"{fn.__name__}: the learning rates for t = 0..{t[-1]}", got, want, extra=extra),
             f"{kind} decay, t = 0..{t[-1]}")


# ---------------------------------------------------------------- the grid-search loop

@_checker
def check_search_loop(fn):
    """Check fn(space, evaluate) -> results: every combination of space's values evaluated once,
    each result a dict of the point's values plus "val_acc", best first."""
    space = {"lr": [0.1, 0.01, 0.001], "hidden_sizes": [[64], [32, 16]], "l2_lambda": [0.0, 1e-3]}
    calls = []

    def score(lr, hidden_sizes, l2_lambda):
        # Made up, but deterministic and different for every point.
        return round(0.5 + 0.3 * math.exp(-abs(math.log10(lr) + 1.8)) - 10 * l2_lambda + 0.01 * len(hidden_sizes), 6)

    def evaluate(**point):
        calls.append(dict(point))
        return score(**point)

    results = _call("grid_search", fn, space, evaluate)
    grid = [dict(zip(space, values)) for values in itertools.product(*space.values())]
    fail = lambda cause: (_ for _ in ()).throw(AssertionError(f"grid_search is wrong. Likely cause: {cause}"))
    if len(calls) == min(map(len, space.values())) and len(calls) < len(grid):
        fail(f"evaluated {len(calls)} points, not every combination of the values ({len(grid)}): zip pairs the "
             "lists up; itertools.product(*space.values()) gives every combination")
    missing = [p for p in grid if p not in calls]
    if missing:
        fail(f"{len(missing)} of the {len(grid)} combinations were never evaluated, e.g. {missing[0]}")
    if len(calls) > len(grid):
        fail(f"evaluate was called {len(calls)} times for {len(grid)} points: each point once")
    if not isinstance(results, list) or len(results) != len(grid):
        fail(f"expected a list of {len(grid)} results, got {type(results).__name__} of length "
             f"{len(results) if hasattr(results, '__len__') else '?'}")
    if any(not isinstance(r, dict) or "val_acc" not in r for r in results):
        fail("each result should be a dict: the point's values plus 'val_acc'")
    if len({repr(sorted(r.items())) for r in results}) < len(results):
        fail("several results hold the same point: build a new dict for each point (one dict changed in "
             "place is the same object every time)")
    if any(r["val_acc"] != score(**{k: r.get(k) for k in space}) for r in results):
        fail("a result's val_acc is not the score of the point stored with it")
    scores = [r["val_acc"] for r in results]
    if scores == sorted(scores):
        fail("the results are sorted worst first: sort by val_acc with reverse=True")
    if scores != sorted(scores, reverse=True):
        fail("the results are not sorted best first: sorted(results, key=lambda r: r['val_acc'], reverse=True)")
    _correct(0.0, f"grid search over {len(grid)} points, best first")
