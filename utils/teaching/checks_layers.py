"""Checks for the exercises (notebook 06) that say which output is wrong and why: layers, im2col.

The checks of the training exercises (loss, L2, SGD, schedules, the grid loop) are in
utils/teaching/checks_training.py; both use the comparison below. Each ``check_*`` runs the student's
code and the project's reference (module.py, utils/core/optim.py) on the same small float64
inputs, with non-zero random weights and biases.
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
import warnings

import numpy as np

import module
from utils.teaching.gradcheck import gradcheck_layer, rel_error

TOL = 1e-7  # float64 against float64: a right answer agrees to ~1e-15


class NotWrittenYet(Exception):
    """The student's code raised NotImplementedError; what names the blank."""


def checker(fn):
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


def call(what, fn, *args, cause="an array of the wrong shape; print the shapes of the arrays on that line"):
    """fn(*args); NotImplementedError becomes NotWrittenYet, any other error an AssertionError naming what."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args)
    except NotImplementedError:
        raise NotWrittenYet(what) from None
    except Exception as e:
        raise AssertionError(f"{what} raised {type(e).__name__}: {e}. Likely cause: {cause}") from e


def numbers(what, value, shape=None):
    """value as a float64 array, or an AssertionError saying what the student's code returned instead."""
    if value is None:
        raise AssertionError(f"{what} returned None: did you forget `return`?")
    try:
        if isinstance(value, (str, bytes)) or any(isinstance(v, (str, bytes)) for v in np.ravel(
                np.asarray(value, dtype=object))):
            raise TypeError("text")
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        want = "a number" if shape == () else "an array of numbers" + (f" of shape {shape}" if shape else "")
        raise AssertionError(f"{what} returned {type(value).__name__} {value!r:.60}; expected {want}") from None
    return out


def build(name, cls, args):
    """The student's layer cls(*args), checked to have the params and grads dicts the layer contract asks for."""
    student = call(f"{name}.__init__", cls, *args, cause="a mistake in __init__ itself; it runs with the "
                   f"arguments {args}, as the exercise gives them")
    for attribute in ("params", "grads"):
        if not isinstance(getattr(student, attribute, None), dict):
            raise AssertionError(f"{name}.__init__ set no self.{attribute} dict (got "
                                 f"{type(getattr(student, attribute, None)).__name__}). Likely cause: "
                                 f"super().__init__() was not called first (it creates self.params and self.grads)")
    return student


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


def correct(err, label):
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


@checker
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
        student = build(name, cls, args) if isinstance(layer, type) else layer
        for k, p in ref.params.items():
            if k not in student.params or np.shape(student.params[k]) != p.shape:
                raise AssertionError(f"{name}.__init__: self.params[{k!r}] should have shape {p.shape}, got "
                                     f"{np.shape(student.params.get(k))}")
            student.params[k] = p.copy()
            student.grads[k] = np.zeros_like(p)
        want = ref.forward(x.copy())
        got = call(f"{name}.forward", student.forward, x.copy())
        errors.append(compare(f"{name}.forward: the output", got, want, extra=_forward_mistakes(name, ref, x, want)))
        dout = rng.standard_normal(want.shape)
        before = {k: p.copy() for k, p in student.params.items()}
        dx = call(f"{name}.backward", student.backward, dout.copy())
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
        err = max(gradcheck_layer(*checked[0], rng=seed).values())
    correct(err, f"{name} forward and backward, gradient check")


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


@checker
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
        got = call("im2col", fn, x.copy(), k, s, p)
        errs.append(compare(f"im2col(x, kernel_size={k}, stride={s}, padding={p})", got, want, extra=extra))
    correct(max(errs), "im2col, three kernel/stride/padding settings")
