"""Checks for the training exercises of notebook 06: the loss, L2, SGD with momentum, Adam, the
learning-rate schedules (step, exponential, cosine) and the grid-search loop, each against
utils/core/optim.py or module.py. The verdicts (one line when right, an AssertionError naming the likely
mistake and the formula expected when wrong, a friendly message when the blank is still empty) are
utils/teaching/checks_common.py's. K is the number of classes (C is kept for channels).
Every message is in the reader's language (utils.plumbing.language): _() at the point where it is made,
since a check runs when the reader calls it; identifiers and formulas in code stay as they are.
"""
import itertools
import math

import numpy as np

import module
from utils.core import models
from utils.core.optim import SGD, l2_penalty, l2_regularize, lr_schedule
from utils.plumbing.language import _
from utils.teaching.checks_common import call, checker, close, compare, correct, numbers
from utils.teaching.gradcheck import numerical_gradient, rel_error

# ---------------------------------------------------------------- loss

def _softmax_loss(logits, y, axis=1):
    """Loss and gradient of softmax cross-entropy with the softmax over axis (1 is right)."""
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    p = e / e.sum(axis=axis, keepdims=True)
    n = len(y)
    onehot = np.eye(logits.shape[1])[y]
    return -np.log(p[np.arange(n), y]).mean(), (p - onehot) / n, p, onehot


def _call_loss(fn, logits, y):
    result = call("softmax_cross_entropy", fn, logits.copy(), y.copy())
    if not isinstance(result, tuple) or len(result) != 2:
        raise AssertionError(_("softmax_cross_entropy should return two things, (loss, dlogits); got {type}")
                             .format(type=type(result).__name__))
    return result


@checker
def check_loss(fn, seed=0):
    """Check fn(logits, y) -> (loss, dlogits) against module.SoftmaxCrossEntropy.

    logits (N, K), y (N,) integer labels; loss is the mean over the batch of -log p[y],
    dlogits = (p - onehot(y)) / N. Also feeds logits near 1000, where exp overflows
    unless each row is shifted by its maximum first.
    """
    rng = np.random.default_rng(seed)
    n, c = 6, 5  # N differs from K, so a division by the wrong one is told apart
    logits, y = rng.standard_normal((n, c)), rng.integers(0, c, n)
    ref = module.SoftmaxCrossEntropy()
    want_loss = ref.forward(logits.copy(), y)
    want_grad = ref.backward()
    p, onehot = _softmax_loss(logits, y)[2:]
    cols_loss, cols_grad = _softmax_loss(logits, y, axis=0)[:2]
    loss, grad = _call_loss(fn, logits, y)
    if np.ndim(loss) != 0:
        per_sample = -np.log(p[np.arange(n), y])
        cause = (_("it is the loss of each sample: return their mean") if np.shape(loss) == (n,)
                 and np.allclose(loss, per_sample) else _("the loss must be one number, the mean over the batch"))
        raise AssertionError(_("softmax_cross_entropy: the loss has shape {shape}. Likely cause: {cause}").format(
            shape=np.shape(loss), cause=cause))
    compare(_("softmax_cross_entropy: the loss"), loss, want_loss, n=n, extra=[
        (cols_loss, _("the softmax is taken over the wrong axis: normalise each row (axis=1), one row per image")),
        (-p[np.arange(n), y].mean(), _("the log is missing: the loss is -log p[y]")),
        (want_loss / c, _("divided by the number of classes K as well: divide by N only"))],
        formula="loss = -log(p[range(N), y]).mean()")
    compare("softmax_cross_entropy: dlogits", grad, want_grad, n=n, extra=[
        (cols_grad, _("the softmax is taken over the wrong axis: normalise each row (axis=1)")),
        (p / n, _("the 1 at the true class is not subtracted: dlogits = (p - onehot(y)) / N")),
        ((p - onehot) / c, _("divided by the number of classes K instead of the batch size N"))],
        formula="dlogits = (p - onehot(y)) / N")
    big = 1000 + 50 * logits  # exp(1000) overflows float64
    loss, grad = _call_loss(fn, big, y)
    want_loss = ref.forward(big.copy(), y)
    if not (np.all(np.isfinite(loss)) and np.all(np.isfinite(np.asarray(grad, dtype=np.float64)))):
        raise AssertionError(_("softmax_cross_entropy on logits near 1000 gives NaN or inf. Likely cause: softmax "
                               "without the max-shift overflows (exp(1000) = inf); subtract each row's maximum "
                               "before exp, which leaves the probabilities unchanged"))
    compare(_("softmax_cross_entropy on logits near 1000: the loss"), loss, want_loss)
    compare(_("softmax_cross_entropy on logits near 1000: dlogits"), grad, ref.backward())
    x = logits.copy()
    err = rel_error(np.asarray(_call_loss(fn, x, y)[1], dtype=np.float64),
                    numerical_gradient(lambda: float(fn(x.copy(), y)[0]), x))
    correct(err, _("softmax cross-entropy, gradient check; no overflow on logits near 1000"))


# ---------------------------------------------------------------- L2

def _tiny_model(seed):
    model = models.mlp([5, 4, 3], rng=seed, dtype=np.float64)
    for *_unused, p, _grad in model.parameters():  # non-zero biases: penalising them must show
        p[...] = np.random.default_rng(seed).standard_normal(p.shape)
    return model


@checker
def check_l2(fn, l2_lambda=0.1, seed=0):
    """Check fn(params, l2_lambda) -> (penalty, grads) against utils.core.optim's L2.

    params: {"0.W": ..., "0.b": ..., "2.W": ..., "2.b": ...}, as Sequential.params; penalty =
    l2_lambda / 2 * sum of W**2 over the weights (names ending ".W", biases are not penalised);
    grads: {name: gradient of the penalty}, l2_lambda * W for weights (biases: zeros, or left out).
    """
    model = _tiny_model(seed)
    params = {k: v.copy() for k, v in model.params.items()}
    result = call("l2_regularization", fn, {k: v.copy() for k, v in params.items()}, l2_lambda)
    if not isinstance(result, tuple) or len(result) != 2 or not isinstance(result[1], dict):
        raise AssertionError(_("l2_regularization should return (penalty, grads), grads a dict name -> array"))
    penalty, grads = result
    weights = sum(float(np.sum(v ** 2)) for k, v in params.items() if k.endswith(".W"))
    everything = sum(float(np.sum(v ** 2)) for v in params.values())
    err = compare(_("l2_regularization: the penalty"), penalty, l2_penalty(model, l2_lambda), extra=[
        (l2_lambda / 2 * everything, _("L2 applied to biases: penalise only the weights (names ending in '.W')")),
        (l2_lambda * everything, _("L2 applied to biases (penalise the weights only), and the 1/2 is missing")),
        (l2_lambda * weights, _("the penalty is missing its factor 1/2: it is l2_lambda / 2 * sum(W**2) "
                                "(that 1/2 makes the gradient l2_lambda * W)")),
        (l2_lambda / 2 * sum(np.sqrt(np.sum(v ** 2)) for k, v in params.items() if k.endswith(".W")),
         _("the norm is not squared: sum(W**2), not sqrt(sum(W**2))"))],
        formula=_("penalty = l2_lambda / 2 * sum of (W**2).sum() over the weights"))
    for *_unused, g in model.parameters():
        g[...] = 0
    l2_regularize(model, l2_lambda)
    for k, p in params.items():
        got = grads.get(k, np.zeros_like(p))
        if k.endswith(".b"):
            if got is not None and np.any(got):
                raise AssertionError(_("l2_regularization: grads[{k!r}] is not zero. Likely cause: L2 applied to "
                                       "biases; only the weights (names ending in '.W') are penalised").format(k=k))
            continue
        err = max(err, compare(f"l2_regularization: grads[{k!r}]", got, model.grads[k], extra=[
            (2 * l2_lambda * p, _("the gradient is 2x too large: with the penalty l2_lambda / 2 * sum(W**2) "
                                  "the gradient is l2_lambda * W")),
            (l2_lambda / 2 * p, _("the gradient is missing its factor: d/dW of l2_lambda / 2 * sum(W**2) is "
                                  "l2_lambda * W, not l2_lambda / 2 * W"))], formula="l2_lambda * W"))
    correct(err, _("L2 penalty and its gradient, biases not penalised"))


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


@checker
def check_update(step_fn, lr=0.1, momentum=0.9, seed=0):
    """Check step_fn(w, dw, v, lr, momentum) -> (w, v), one SGD-with-momentum step, against utils.core.optim.SGD.

    Three steps from v = 0 with three different gradients; the weights after each step must
    match v <- momentum * v - lr * dw; w <- w + v. (Only w is compared: storing the velocity
    with the other sign, or lr applied to it, are equally right.)
    """
    rng = np.random.default_rng(seed)
    model = models.Sequential([module.Linear(4, 3, rng=rng, dtype=np.float64)])
    w0 = model.params["0.W"].copy()
    grads = [rng.standard_normal(w0.shape) for _step in range(3)]
    opt = SGD(lr, momentum=momentum)
    w, v, err = w0.copy(), np.zeros_like(w0), 0.0
    for t, g in enumerate(grads, 1):
        model.grads["0.W"][...] = g
        model.grads["0.b"][...] = 0
        opt.step(model)
        result = call("sgd_momentum", step_fn, w.copy(), g.copy(), v.copy(), lr, momentum)
        if not isinstance(result, tuple) or len(result) != 2:
            raise AssertionError(_("sgd_momentum should return (w, v), the new weights and the new velocity"))
        w, v = (numbers(_("sgd_momentum (its {name} at step {t})").format(name=name, t=t), a, w0.shape)
                for name, a in zip("wv", result))
        err = max(err, compare(_("sgd_momentum: the weights after step {t}").format(t=t), w, model.params["0.W"],
                               extra=[
            (_momentum_variant(w0, grads[:t], lr, momentum, "sign"), _("a sign error: the weights move uphill; "
                                                                      "v = momentum * v - lr * dw, then w = w + v")),
            (_momentum_variant(w0, grads[:t], lr, momentum, "order"), _("the order of the update: w moved with "
             "the old velocity; update v first, then w = w + (the new) v")),
            (_momentum_variant(w0, grads[:t], lr, momentum, "no_momentum"), _("the momentum term is missing: "
             "v = momentum * v - lr * dw keeps part of the previous step")),
            (_momentum_variant(w0, grads[:t], lr, momentum, "momentum_sign"), _("the momentum sign: it is "
             "+momentum * v, the velocity keeps its direction")),
            (_momentum_variant(w0, grads[:t], lr, momentum, "dampening"), _("the gradient is scaled by "
             "(1 - momentum): that is an average, not the momentum update v = momentum * v - lr * dw"))],
            formula="v = momentum * v - lr * dw; w = w + v", plural=True))
    correct(err, _("SGD with momentum, three steps"))


# ---------------------------------------------------------------- learning-rate schedules

def _schedule_mistakes(kind, t, lr, f, s):
    every = (_("the decay is applied every iteration instead of every decay_steps = {s}: the exponent is "
               "t / decay_steps rounded down, not t") if kind == "step" else
             _("the decay is applied every iteration instead of every decay_steps = {s}: the exponent is "
               "t / decay_steps, not t"))
    extra = [(lr * f ** t, every.format(s=s))]
    if kind == "step":
        return extra + [
            (lr * f ** (t / s), _("the decay is smooth: a step schedule uses integer division, t // decay_steps")),
            (lr * f ** (t // s + 1), _("decayed one step too early: at t = 0 the rate must be lr itself"))]
    return extra + [
        (lr * f ** (t // s), _("the decay is a staircase: an exponential schedule uses t / decay_steps, "
                               "not t // decay_steps")),
        (lr * np.exp(-f * t / s), _("exp(-decay_factor * t / decay_steps) is another schedule: here the "
                                    "rate is lr * decay_factor ** (t / decay_steps)"))]


@checker
def check_schedule(fn, kind=None, lr=0.1, decay_factor=0.5, decay_steps=5):
    """Check fn(t, lr, decay_factor, decay_steps) -> the learning rate at iteration t.

    kind: "step" or "exponential"; by default read from the function's name, and when the name
    does not tell, the function passes if it is either schedule. Compared with
    utils.core.optim.lr_schedule for t = 0 .. 3 * decay_steps.
    """
    name = getattr(fn, "__name__", None) or _("the schedule")
    if kind is None:
        kind = "step" if "step" in name else "exponential" if "exp" in name else None
    if kind not in (None, "step", "exponential"):
        raise AssertionError(_("check_schedule(kind={kind!r}) is wrong. Likely cause: kind is 'step' or "
                               "'exponential' (the cosine schedule has its own check, check_cosine)").format(kind=kind))
    t = np.arange(3 * decay_steps + 1)
    f, s = decay_factor, decay_steps
    got = np.array([numbers(f"{name}(t={i}, ...)", call(name, fn, int(i), lr, f, s), shape=()) for i in t])
    kinds = [kind] if kind else ["step", "exponential"]
    wants = {k: np.array([lr_schedule(lr, k, f, s)(i) for i in t]) for k in kinds}
    for k, want in wants.items():
        if close(got, want):
            decay = _("step decay, t = 0..{last}") if k == "step" else _("exponential decay, t = 0..{last}")
            return correct(rel_error(got, want), decay.format(last=t[-1]))
    if kind is None:  # neither: judge against the one it is nearer to
        kind = min(wants, key=lambda k: rel_error(got, wants[k]))
        taken = (_("{name} (taken as the step schedule, the nearer; pass kind= to say which)") if kind == "step"
                 else _("{name} (taken as the exponential schedule, the nearer; pass kind= to say which)"))
        name = taken.format(name=name)
    formula = ("lr * decay_factor ** (t // decay_steps)" if kind == "step"
               else "lr * decay_factor ** (t / decay_steps)")
    compare(_("{name}: the learning rates for t = 0..{last}").format(name=name, last=t[-1]), got, wants[kind],
            extra=_schedule_mistakes(kind, t, lr, f, s), formula=formula, plural=True)


@checker
def check_cosine(fn, lr=0.1, total_steps=20, min_lr=0.01):
    """Check fn(t, lr, total_steps, min_lr) -> the cosine schedule's rate at iteration t, for t = 0 .. total_steps + 5.

    lr_t = min_lr + (lr - min_lr) * (1 + cos(pi * t / total_steps)) / 2, and min_lr after total_steps.
    """
    t = np.arange(total_steps + 6)
    name = getattr(fn, "__name__", "cosine_decay")
    got = np.array([numbers(f"{name}(t={i}, ...)", call(name, fn, int(i), lr, total_steps, min_lr), shape=())
                    for i in t])
    schedule = lr_schedule(lr, "cosine", total_steps=total_steps, min_lr=min_lr)
    want = np.array([schedule(i) for i in t])
    T, span = total_steps, lr - min_lr
    extra = [(min_lr + span * (1 + np.cos(np.pi * t / T)) / 2, _("the rate rises again after total_steps = {T}: "
              "hold it at min_lr, e.g. t = min(t, total_steps)").format(T=T))]
    for tt in (np.minimum(t, T), t):  # each mistake with and without the hold at total_steps
        cos = np.cos(np.pi * tt / T)
        extra += [(min_lr + span * (1 + np.cos(np.pi * tt / (2 * T))) / 2, _("the cosine runs over 2 * total_steps: "
                   "pi * t / total_steps brings it from 1 down to -1 exactly at t = total_steps")),
                  (min_lr + span * cos, _("cos(...) alone swings from +1 to -1 and the rate goes below min_lr: "
                   "use (1 + cos(pi * t / total_steps)) / 2, which goes from 1 to 0")),
                  (lr * (1 + cos) / 2, _("min_lr is ignored: the rate goes from lr down to min_lr, not to 0")),
                  (min_lr + span * (1 + np.cos(tt / T)) / 2, _("the angle is t / total_steps: it needs "
                   "pi * t / total_steps"))]
    correct(compare(_("{name}: the learning rates for t = 0..{last}").format(name=name, last=t[-1]), got, want,
                    extra=extra, plural=True,
                    formula="min_lr + (lr - min_lr) * (1 + cos(pi * min(t, total_steps) / total_steps)) / 2"),
            _("cosine decay from {lr} to {min_lr} over {T} steps, then held").format(lr=lr, min_lr=min_lr, T=T))


# ---------------------------------------------------------------- Adam

def _adam(params, grads_seq, lr, b1, b2, eps, variant=None):
    """The parameters after len(grads_seq) steps of (a mistaken) Adam from zero moments."""
    p = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    t = 0
    for grads in grads_seq:
        t += variant != "t_fixed"
        for j, k in enumerate(p):
            g, tt = grads[k], (t - 1) * len(p) + j + 1 if variant == "t_per_param" else max(t, 1)
            m[k] = b1 * m[k] + (1 - b1) * g
            v2[k] = b2 * v2[k] + (1 - b2) * (np.abs(g) if variant == "v_of_g" else g * g)
            m_hat, v_hat = (m[k], v2[k]) if variant == "no_bias_correction" else (m[k] / (1 - b1 ** tt),
                                                                                 v2[k] / (1 - b2 ** tt))
            p[k] = p[k] - lr * m_hat / ((v_hat if variant == "no_sqrt" else np.sqrt(v_hat)) + eps)
    return p


@checker
def check_adam(cls, lr=0.01, seed=0):
    """Check an Adam class: Adam(lr) with step(params, grads), params and grads dicts name -> array,
    the params updated in place; three steps from zero moments against the textbook rule (and
    utils.core.optim.Adam, which folds the bias corrections into the step size: the same numbers).
    """
    rng = np.random.default_rng(seed)
    params = {"0.W": rng.standard_normal((4, 3)), "0.b": rng.standard_normal(3)}
    grads_seq = [{k: rng.standard_normal(v.shape) * 10 ** -j for k, v in params.items()} for j in range(3)]
    b1, b2, eps = 0.9, 0.999, 1e-8
    opt = call("Adam.__init__", cls, lr, cause=_("a mistake in __init__; it is called as Adam(lr)"))
    live = {k: v.copy() for k, v in params.items()}
    arrays = dict(live)
    err = 0.0
    for step, grads in enumerate(grads_seq, 1):
        call("Adam.step", opt.step, live, {k: g.copy() for k, g in grads.items()})
        for k in live:
            if live[k] is not arrays[k] or not np.shares_memory(live[k], arrays[k]):
                raise AssertionError(_("Adam.step replaced params[{k!r}] with a new array. Likely cause: "
                                       "params[{k!r}] = ...; write into the network's array instead, "
                                       "params[{k!r}] -= ... (or [...] =), or the network never sees the update")
                                     .format(k=k))
        if step == 1 and not all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in live.values()):
            raise AssertionError(_("Adam.step: the params after step 1 are NaN or inf. Likely cause: t is still 0 "
                                   "in the bias correction, 1 - beta1**0 = 0, a division by zero: t += 1 before "
                                   "computing m_hat and v_hat (the first step has t = 1)"))
        want = _adam(params, grads_seq[:step], lr, b1, b2, eps)
        for k in live:
            extra = [(_adam(params, grads_seq[:step], lr, b1, b2, eps, v)[k], cause) for v, cause in (
                ("no_bias_correction", _("the bias correction is missing: m and v start at 0, so early steps are "
                 "too small or too large; m_hat = m / (1 - beta1**t), v_hat = v / (1 - beta2**t)")),
                ("t_per_param", _("the step count t goes up once per parameter; it counts steps: t += 1 once per "
                 "call of step, before the loop over the parameters")),
                ("t_fixed", _("the step count t never changes: t += 1 at the start of every step, so the bias "
                 "correction fades out as t grows")),
                ("v_of_g", _("the second moment averages |g|; it averages g**2: v = beta2 * v + (1 - beta2) * g**2")),
                ("no_sqrt", _("the square root is missing: divide by sqrt(v_hat) + eps")))]
            err = max(err, compare(_("Adam.step: params[{k!r}] after step {step}").format(k=k, step=step), live[k],
                                   want[k], extra=extra,
                                   formula="t += 1; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g**2; "
                                   "p -= lr * m_hat / (sqrt(v_hat) + eps)"))
    correct(err, _("Adam, three steps, bias-corrected"))


# ---------------------------------------------------------------- the grid-search loop

@checker
def check_search_loop(fn):
    """Check fn(space, score) -> results: every combination of space's values evaluated once,
    each result a dict of the point's values plus "val_acc", best first."""
    space = {"lr": [0.1, 0.01, 0.001], "hidden_sizes": [[64], [32, 16]], "l2_lambda": [0.0, 1e-3]}
    calls = []

    def score(lr, hidden_sizes, l2_lambda):
        # Made up, but deterministic and different for every point.
        return round(0.5 + 0.3 * math.exp(-abs(math.log10(lr) + 1.8)) - 10 * l2_lambda + 0.01 * len(hidden_sizes), 6)

    def counted(**point):
        calls.append(dict(point))
        return score(**point)

    results = call("grid_search", fn, space, counted)
    grid = [dict(zip(space, values)) for values in itertools.product(*space.values())]
    def fail(cause):
        raise AssertionError(_("grid_search is wrong. Likely cause: {cause}").format(cause=cause))

    if len(calls) == min(map(len, space.values())) and len(calls) < len(grid):
        fail(_("evaluated {calls} points, not every combination of the values ({grid}): zip pairs the lists up; "
               "itertools.product(*space.values()) gives every combination").format(calls=len(calls), grid=len(grid)))
    missing = [p for p in grid if p not in calls]
    if missing:
        fail(_("{missing} of the {grid} combinations were never evaluated, e.g. {first}").format(
            missing=len(missing), grid=len(grid), first=missing[0]))
    if len(calls) > len(grid):
        fail(_("score was called {calls} times for {grid} points: each point once").format(calls=len(calls),
                                                                                           grid=len(grid)))
    if not isinstance(results, list) or len(results) != len(grid):
        fail(_("expected a list of {grid} results, got {type} of length {size}").format(
            grid=len(grid), type=type(results).__name__, size=len(results) if hasattr(results, "__len__") else "?"))
    if any(not isinstance(r, dict) or "val_acc" not in r for r in results):
        fail(_("each result should be a dict: the point's values plus 'val_acc'"))
    if len({repr(sorted(r.items())) for r in results}) < len(results):
        fail(_("several results hold the same point: build a new dict for each point (one dict changed in "
               "place is the same object every time)"))
    if any(r["val_acc"] != score(**{k: r.get(k) for k in space}) for r in results):
        fail(_("a result's val_acc is not the score of the point stored with it"))
    scores = [r["val_acc"] for r in results]
    if scores == sorted(scores):
        fail(_("the results are sorted worst first: sort by val_acc with reverse=True"))
    if scores != sorted(scores, reverse=True):
        fail(_("the results are not sorted best first: sorted(results, key=lambda r: r['val_acc'], reverse=True)"))
    correct(0.0, _("grid search over {grid} points, best first").format(grid=len(grid)))
