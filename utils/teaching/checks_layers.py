"""Checks for the layer exercises of notebook 06 (Linear, ReLU, Sigmoid, Tanh, MaxPool2D, Conv2D, Dropout)
and for im2col, each against module.py's layer of the same name on small float64 inputs with non-zero
weights and biases. Besides the numbers, a layer must keep module.py's contract: backward writes INTO
self.grads' arrays (never replaces them, never adds to them), changes no weight, and neither pass
changes the array it was given. What the three verdicts look like: utils/teaching/checks_common.py.
"""
import itertools
import re

import numpy as np

import module
from utils.plumbing.language import _
from utils.teaching.checks_common import build, call, checker, close, compare, correct
from utils.teaching.gradcheck import gradcheck_layer

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
    raise ValueError(_("check_layer knows Linear, ReLU, Sigmoid, Tanh, MaxPool2D and Conv2D, not {name}; "
                       "name the one to compare with: check_layer(layer, kind='Linear')").format(name=repr(name)))


def _forward_mistakes(name, ref, x, out):
    if name == "Linear":
        W, b = ref.params["W"], ref.params["b"]
        return [(x @ W, _("the bias is missing: out = x @ W + b")),
                (x @ W - b, _("the bias is subtracted: out = x @ W + b"))]
    if name == "ReLU":
        return [(x, _("nothing was clipped: out = max(x, 0)")), (np.abs(x), _("|x| instead of max(x, 0)"))]
    if name == "Sigmoid":
        return [(1 / (1 + np.exp(x)), _("a sign error inside exp: sigmoid(x) = 1 / (1 + exp(-x))"))]
    if name == "Conv2D":
        flipped = module.Conv2D(ref.in_channels, ref.out_channels, ref.kernel_size, ref.stride, ref.padding,
                                dtype=np.float64)
        flipped.params = {"W": ref.params["W"][..., ::-1, ::-1].copy(), "b": ref.params["b"]}
        return [(flipped.forward(x), _("the kernel is flipped: deep-learning 'convolution' is cross-correlation, "
                                       "multiply the window by W as it is")),
                (out - ref.params["b"][:, None, None], _("the bias is missing"))]
    return []


def _backward_mistakes(name, ref, x, dout, key):
    out = ref.out
    if name == "Linear" and key == "b":
        return [(dout.sum(axis=1), _("the bias gradient is summed over the wrong axis: sum dout over the batch, "
                                     "axis 0")),
                (dout, _("the bias gradient is not summed over the batch: db = dout.sum(axis=0)"))]
    if name == "Conv2D" and key == "b":
        return [(dout.sum(axis=(1, 2, 3)), _("the bias gradient is summed over the wrong axes: sum over batch, "
                                             "rows and columns, axis=(0, 2, 3)")),
                (dout.sum(axis=0), _("the bias gradient is summed over the batch only; sum over rows and columns "
                                     "too, axis=(0, 2, 3)"))]
    if key != "x":
        return []
    if name == "ReLU":
        return [(dout, _("the ReLU mask is missing: the gradient is non-zero where the input <= 0; "
                         "dx = dout * (x > 0)")),
                (dout * (x <= 0), _("the ReLU mask is inverted: pass the gradient where x > 0")),
                (dout * out, _("multiplied by the output instead of the 0/1 mask (x > 0)"))]
    if name == "Sigmoid":
        return [(dout * x * (1 - x), _("the derivative is taken at the input x instead of the output "
                                       "s = sigmoid(x): dx = dout * s * (1 - s)")),
                (dout * out, _("the factor (1 - s) is missing: dx = dout * s * (1 - s)"))]
    if name == "Tanh":
        return [(dout * (1 - x ** 2), _("the derivative is taken at the input x instead of the output "
                                        "t = tanh(x): dx = dout * (1 - t**2)")),
                (dout * (1 - out), _("the square is missing: dx = dout * (1 - t**2)"))]
    if name == "MaxPool2D":
        k = ref.kernel_size
        spread = dout.repeat(k, axis=2).repeat(k, axis=3)
        return [(spread, _("no max mask: every position of the window got the gradient; only the maximum should")),
                (spread / k ** 2, _("the gradient is spread evenly over the window (average pooling's gradient); "
                                    "it belongs to the maximum only")),
                (spread * (x == out.repeat(k, axis=2).repeat(k, axis=3)),
                 _("the max-pool gradient was copied to every tied position; a window with several equal maxima "
                   "must pass dout to one of them only (the first), or the gradient is multiplied"))]
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


FORMULAS = {  # what each gradient is, in the notebook's terms (in English: see formula())
    ("Linear", "x"): "dx = dout @ W.T", ("Linear", "W"): "dW = x.T @ dout", ("Linear", "b"): "db = dout.sum(axis=0)",
    ("ReLU", "x"): "dx = dout * (x > 0)", ("Sigmoid", "x"): "dx = dout * s * (1 - s), s = sigmoid(x)",
    ("Tanh", "x"): "dx = dout * (1 - t**2), t = tanh(x)",
    ("MaxPool2D", "x"): "dx = dout at the first maximum of each window, 0 elsewhere",
    ("Conv2D", "x"): "dcols = W_flat.T @ d, then col2im", ("Conv2D", "W"): "dW = (d @ cols.T).reshape(W.shape)",
    ("Conv2D", "b"): "db = d.sum(axis=1), d = dout as (F, N*Ho*Wo)",
}


def formula(name, key, default=None):
    """FORMULAS[(name, key)] in the reader's language (the formulas with words in them are translated)."""
    translated = {
        ("MaxPool2D", "x"): _("dx = dout at the first maximum of each window, 0 elsewhere"),
        ("Conv2D", "x"): _("dcols = W_flat.T @ d, then col2im"),
        ("Conv2D", "b"): _("db = d.sum(axis=1), d = dout as (F, N*Ho*Wo)"),
    }
    return translated.get((name, key), FORMULAS.get((name, key), default))


NAMES_W = re.compile(r"\bW\b|\[.W.\]|\bW_flat\b|\bweights?\b")
NAMES_X = re.compile(r"\bx\b|self\.x\b|\bcols\b|\bX\b")


def _shape_hint(name, shapes):
    """explain() for call(): on a shape error in backward, the product whose operands are the wrong way round."""
    def explain(error, line):
        if not isinstance(error, ValueError) or name not in ("Linear", "Conv2D"):
            return None
        if name == "Linear":
            (n, d), m = shapes["x"], shapes["W"][1]
            dx = _("dx = dout @ W.T: dout ({n}, {m}) @ W.T ({m}, {d}) -> ({n}, {d}), the shape of x"
                   ).format(n=n, m=m, d=d)
            dw = _("dW = x.T @ dout: x.T ({d}, {n}) @ dout ({n}, {m}) -> ({d}, {m}), the shape of W"
                   ).format(n=n, m=m, d=d)
        else:
            f, ck = shapes["W"][0], int(np.prod(shapes["W"][1:]))
            dx = _("dcols = W_flat.T @ d: W_flat.T ({ck}, {f}) @ d ({f}, P) -> ({ck}, P), the shape of cols"
                   ).format(f=f, ck=ck)
            dw = _("dW = d @ cols.T: d ({f}, P) @ cols.T (P, {ck}) -> ({f}, {ck}), then reshape to W's shape"
                   ).format(f=f, ck=ck)
        uses_w, uses_x = bool(NAMES_W.search(line)), bool(NAMES_X.search(line))
        if uses_w and not uses_x:
            return _("this line computes dx with its operands in the wrong order or untransposed; {dx}").format(dx=dx)
        if uses_x and not uses_w:
            return _("this line computes dW with its operands in the wrong order or untransposed; {dw}").format(dw=dw)
        return _("a product with its operands the wrong way round; {dx}; {dw}").format(dx=dx, dw=dw)
    return explain


def _contract(name, student, x, x_given, dout, dout_given, grads_before):
    """The layer contract beyond the numbers: inputs untouched, grads written into, not replaced."""
    if not np.array_equal(x_given, x):
        raise AssertionError(_("{name}.forward changed its input x in place (e.g. x[x < 0] = 0, or out=x). Likely "
                               "cause: an in-place operation on x; the layer below keeps that array as its output, "
                               "and backward reads it: make a new array (np.maximum(x, 0) returns one)"
                               ).format(name=name))
    if not np.array_equal(dout_given, dout):
        raise AssertionError(_("{name}.backward changed dout in place (e.g. dout[x <= 0] = 0). Likely cause: an "
                               "in-place operation on dout, the caller's array (a layer with several users, or a "
                               "test that reuses it, would see it changed): build a new array, {formula}"
                               ).format(name=name, formula=formula(name, "x", _("dx = dout * local gradient"))))
    for k, before in grads_before.items():
        if student.grads.get(k) is not before:
            raise AssertionError(_(
                "{name}.backward replaced self.grads[{k}] with a new array (self.grads[{k}] = ...) instead "
                "of writing into it (self.grads[{k}][...] = ...). Likely cause: assignment to the dict entry. "
                "Why it matters: the network and the optimiser collect references to these arrays once "
                "(Network.grads in this notebook, model.grads in module.py's contract); a new array is never "
                "seen by them, so training would step with stale gradients without any error").format(
                    name=name, k=repr(k)))


@checker
def check_layer(layer, kind=None, seed=0):
    """Check a layer class (or instance) against module.py's layer of the same name (or kind).

    layer: the class (built here with the arguments the exercise gives) or an instance (its
    weights are replaced by the check's random ones). Checks forward, then backward: dx and
    every grads[k], that backward leaves the weights alone, writes into grads' arrays (a second
    backward gives the same grads, not their sum), and changes neither x nor dout. Prints
    "correct: ..." or raises AssertionError with the likely cause.
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
                raise AssertionError(_("{name}.__init__: self.params[{k}] should have shape {want}, got {got}"
                                       ).format(name=name, k=repr(k), want=p.shape,
                                                got=np.shape(student.params.get(k))))
            student.params[k] = p.copy()
            student.grads[k] = np.zeros_like(p)
        want = ref.forward(x.copy())
        x_given = x.copy()
        got = call(f"{name}.forward", student.forward, x_given)
        errors.append(compare(_("{name}.forward: the output").format(name=name), got, want,
                              extra=_forward_mistakes(name, ref, x, want)))
        dout = rng.standard_normal(want.shape)
        before = {k: p.copy() for k, p in student.params.items()}
        grads_before = {k: student.grads[k] for k in ref.params}
        dout_given = dout.copy()
        shapes = {"x": x.shape, **{k: p.shape for k, p in ref.params.items()}}
        dx = call(f"{name}.backward", student.backward, dout_given, explain=_shape_hint(name, shapes))
        want_dx = ref.backward(dout.copy())
        for k in before:
            if not np.array_equal(before[k], student.params[k]):
                raise AssertionError(_("{name}.backward changed self.params[{k}]. Likely cause: an update inside "
                                       "backward; backward only writes self.grads, the optimiser updates the weights"
                                       ).format(name=name, k=repr(k)))
        if name == "MaxPool2D" and np.shape(dx) == x.shape and _one_max_per_window(dx, x, dout, ref.kernel_size):
            want_dx = np.asarray(dx, dtype=np.float64)  # another tie-break than the reference's: also right
        errors.append(compare(_("{name}.backward: the returned dx").format(name=name), dx, want_dx, n=len(x),
                              extra=_backward_mistakes(name, ref, x, dout, "x"), formula=formula(name, "x")))
        for k in ref.params:
            errors.append(compare(f"{name}.backward: self.grads[{k!r}]", student.grads.get(k), ref.grads[k],
                                  n=len(x), extra=_backward_mistakes(name, ref, x, dout, k),
                                  formula=formula(name, k)))
        _contract(name, student, x, x_given, dout, dout_given, grads_before)
        if ref.params:  # a second batch: grads hold its gradient, not the sum of both
            call(f"{name}.forward", student.forward, x.copy())
            call(f"{name}.backward", student.backward, dout.copy())
            for k in ref.params:
                if close(np.asarray(student.grads[k], dtype=np.float64), 2 * ref.grads[k]):
                    raise AssertionError(_(
                        "{name}.backward: self.grads[{k}] after a second backward is twice the gradient. Likely "
                        "cause: backward adds to the gradient (+=), so every batch would step with the sum of all "
                        "batches so far; write into it: self.grads[{k}][...] = ... ({formula})").format(
                            name=name, k=repr(k), formula=formula(name, k)))
        checked.append((student, x))
    # The verdict above compares with the reference; the number shown is the classic gradient
    # check, on the first case (no ties for MaxPool2D, where central differences would fail).
    with np.errstate(all="ignore"):
        err = max(gradcheck_layer(*checked[0], rng=seed).values())
    correct(err, _("{name} forward and backward, gradient check").format(name=name))


# ---------------------------------------------------------------- im2col

def reference_im2col(x, kernel_size, stride=1, padding=0):
    """x (N, C, H, W) -> cols (C * k * k, N * Ho * Wo), notebook 05's layout: one column per output
    position, in (image, output row, output column) order; its rows in (channel, kernel row, kernel
    column) order, as W.reshape(F, -1), so that out = W.reshape(F, -1) @ cols."""
    k, s = kernel_size, stride
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    cols = np.empty((c, k, k, n, ho, wo), dtype=x.dtype)
    for i, j in itertools.product(range(ho), range(wo)):
        cols[:, :, :, :, i, j] = x[:, :, i * s:i * s + k, j * s:j * s + k].transpose(1, 2, 3, 0)
    return cols.reshape(c * k * k, n * ho * wo)


@checker
def check_im2col(fn, seed=0):
    """Check fn(x, kernel_size, stride, padding) -> cols (C * k * k, N * Ho * Wo) against reference_im2col."""
    x = np.random.default_rng(seed).standard_normal((2, 3, 5, 5))
    errs = []
    for k, s, p in ((3, 1, 1), (3, 2, 0), (2, 1, 0)):
        want = reference_im2col(x, k, s, p)
        n, c = x.shape[:2]
        ho = wo = (5 + 2 * p - k) // s + 1
        extra = [(want.T, _("the transposed layout (one row per output position, N * Ho * Wo rows): notebooks 05 "
                            "and 06 put one COLUMN per output position, cols (C * k * k, N * Ho * Wo), so that "
                            "out = W_flat @ cols")),
                 (want.reshape(c, k, k, -1).transpose(1, 2, 0, 3).reshape(want.shape),
                  _("the rows are in (kernel row, kernel column, channel) order; W.reshape(F, -1) needs "
                    "(channel, kernel row, kernel column)")),
                 (want.reshape(-1, n, ho, wo).transpose(0, 2, 3, 1).reshape(want.shape),
                  _("the columns are in (output row, output column, image) order (module.Conv2D's memory "
                    "order); here they go (image, output row, output column), so that W_flat @ cols reshapes "
                    "to (F, N, Ho, Wo)"))]
        if p:
            extra.append((reference_im2col(x, k, s, 0), _("the input was not padded: np.pad rows and columns by "
                                                          "`padding` on each side first")))
        if s > 1:
            extra.append((reference_im2col(x, k, 1, p), _("the stride is ignored: window (i, j) starts at "
                                                          "row i * stride, column j * stride")))
        got = call("im2col", fn, x.copy(), k, s, p)
        errs.append(compare(f"im2col(x, kernel_size={k}, stride={s}, padding={p})", got, want, extra=extra,
                            formula=_("cols of shape (C*k*k, N*Ho*Wo) = {shape}").format(shape=want.shape)))
    correct(max(errs), _("im2col, three kernel/stride/padding settings"))


# ---------------------------------------------------------------- dropout

@checker
def check_dropout(cls, p=0.4, seed=0):
    """Check a Dropout(p, rng) class: inverted dropout in train mode, the identity in eval mode.

    The student's random draws cannot be replayed, so the check reads the mask off the output:
    in train mode about a fraction p of the units is 0 and the others are x / (1 - p); backward
    multiplies dout by that same mask; a second forward draws a new mask; eval mode is x itself.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(1, 2, (100, 100)) * rng.choice([-1, 1], (100, 100))  # never 0: a 0 in out means dropped
    dout = rng.standard_normal(x.shape)
    layer = build("Dropout", cls, [p, seed])
    fix = "out = x * mask, mask = (rng.random(x.shape) >= p) / (1 - p)"
    wrong = _("Dropout.forward in train mode is wrong. Likely cause: {cause} (expected: {fix})")
    layer.eval()
    out = np.asarray(call(_("Dropout.forward (eval mode)"), layer.forward, x.copy()), dtype=np.float64)
    if out.shape == x.shape and np.any(out == 0):
        raise AssertionError(_("Dropout.forward in eval mode drops units. Likely cause: self.training is not "
                               "looked at; net.eval() sets it to False, and then dropout must return x unchanged"))
    compare(_("Dropout.forward in eval mode: the output"), out, x, extra=[
        (x * (1 - p), _("the output is scaled by (1 - p) in eval mode: that is the old, non-inverted dropout; "
                        "inverted dropout scales in training, so in eval mode it is the identity, out = x"))],
        formula=_("out = x in eval mode"))
    dx = np.asarray(call("Dropout.backward", layer.backward, dout.copy()), dtype=np.float64)
    if dx.shape == x.shape and np.any(dx == 0):
        raise AssertionError(_("Dropout.backward in eval mode drops gradients. Likely cause: a new random mask in "
                               "backward instead of the mask forward used (none in eval mode): dx = dout * "
                               "self.mask, or dout itself when there is no mask"))
    compare(_("Dropout.backward in eval mode: dx"), dx, dout, formula=_("dx = dout in eval mode"))
    layer.train()
    out = np.asarray(call(_("Dropout.forward (train mode)"), layer.forward, x.copy()), dtype=np.float64)
    if out.shape != x.shape:
        raise AssertionError(_("Dropout.forward in train mode returned shape {got}, expected {want}").format(
            got=out.shape, want=x.shape))
    kept = out != 0
    if kept.all():
        raise AssertionError(_("Dropout.forward in train mode dropped nothing. Likely cause: the mask is not "
                               "applied, or self.training is read the wrong way round (expected: {fix})"
                               ).format(fix=fix))
    share = 1 - kept.mean()
    if abs(share - p) > 0.03:
        cause = (_("p is the probability of DROPPING a unit, but a share {share:.2f} close to 1 - p was dropped: "
                   "keep = rng.random(x.shape) >= p") if abs(share - (1 - p)) < 0.03 else
                 _("a share {share:.2f} of the units was dropped, expected about p = {p}")).format(share=share, p=p)
        raise AssertionError(wrong.format(cause=cause, fix=fix))
    ratio = out[kept] / x[kept]
    for factor, cause in ((1, _("the kept units are not scaled: inverted dropout divides them by (1 - p), so that "
                                "the expected output is x and eval mode needs no change")),
                          (1 - p, _("the kept units are multiplied by (1 - p); inverted dropout DIVIDES by (1 - p)")),
                          (1 / p, _("the kept units are divided by p; divide by the keep probability, (1 - p)"))):
        if np.allclose(ratio, factor):
            raise AssertionError(wrong.format(cause=cause, fix=fix))
    err = compare(_("Dropout.forward in train mode: the kept units"), ratio, np.full(ratio.shape, 1 / (1 - p)),
                  formula=_("x / (1 - p) where kept"))
    mask = kept / (1 - p)
    dx = np.asarray(call("Dropout.backward", layer.backward, dout.copy()), dtype=np.float64)
    if dx.shape == x.shape and np.any((dx != 0) != kept) and abs((dx == 0).mean() - p) < 0.05:
        raise AssertionError(_("Dropout.backward is wrong. Likely cause: a new random mask in backward; the "
                               "gradient must flow through the units forward kept: keep the mask (self.mask) and "
                               "reuse it, dx = dout * self.mask"))
    err = max(err, compare(_("Dropout.backward in train mode: dx"), dx, dout * mask, extra=[
        (dout, _("backward passes dout through unchanged: multiply it by forward's mask, dx = dout * self.mask")),
        (dout * kept, _("backward's mask is not scaled by 1 / (1 - p) as forward's was: dx = dout * self.mask"))],
        formula=_("dx = dout * mask, the mask of the last forward")))
    again = np.asarray(call(_("Dropout.forward (train mode)"), layer.forward, x.copy()), dtype=np.float64)
    if np.array_equal(again != 0, kept):
        raise AssertionError(_("Dropout.forward drops the same units on every call. Likely cause: the mask is "
                               "drawn once (in __init__), or from a generator re-created with the same seed in "
                               "forward; draw a new mask every forward from self.rng, made once in __init__"))
    correct(err, _("inverted dropout, p = {p}: about {share:.0%} dropped, the rest scaled by 1/(1-p); "
                   "identity in eval mode").format(p=p, share=share))
