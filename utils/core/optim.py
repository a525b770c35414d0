"""Optimisers, L2 regularisation and learning-rate schedules.

One signature for every optimiser: ``optimizer.step(model)`` reads each parameter's
gradient from the model and updates the parameter in place; ``optimizer.lr`` is the
current learning rate, which the training loop sets from a schedule before each step.
``state_dict()`` and ``load_state_dict(state, model)`` save and restore what an optimiser
has learnt (its per-parameter slots and step count), so a run can resume where it stopped.
Bad hyperparameters raise ConfigError, a bad saved state CheckpointError (both ValueErrors).
"""
import math

import numpy as np

from utils.plumbing.config import check_nesterov
from utils.plumbing.errors import CheckpointError, ConfigError
from utils.plumbing.validate import is_int, is_number


def _number(who, name, value, ok, expected):
    """value if it is a finite real number (not a bool) for which ok(value) holds; else a ConfigError."""
    try:
        good = is_number(value) and ok(value)
    except OverflowError:  # an int too large for a float, e.g. 10**400
        good = False
    if not good:
        raise ConfigError(f"{who}: {name} must be {expected} (a finite number), got {value!r}")
    return value


def _whole(v):
    return v >= 1 and float(v).is_integer()


def _positive(who, name, value):
    return _number(who, name, value, lambda v: v > 0, "positive")


def _fraction(who, name, value):
    return _number(who, name, value, lambda v: 0 <= v < 1, "in [0, 1)")


class Optimizer:
    """What SGD and Adam share: per-parameter slots (self.slots) and scalars, saved and restored together."""

    scalar_names = ()  # scalar state besides the slots, e.g. Adam's step count t

    def state_dict(self):
        """{"type": "Adam", "t": 3, "m": {"0.W": array, ...}, "v": {...}}: the scalars and the slot
        arrays (the live arrays, not copies), keyed by slot, then by parameter name."""
        return {"type": type(self).__name__, **{k: getattr(self, k) for k in self.scalar_names},
                **{slot: dict(values) for slot, values in self.slots.items()}}

    def load_state_dict(self, state, model=None):
        """Restore a state_dict(), all checked before anything changes (CheckpointError naming what is wrong).

        Checked: the keys, the type, the scalars, and the arrays (float32/float64, finite, one shape
        per parameter across slots); with model, also each array's name, shape and dtype against the
        model's parameter. Arrays are copied in.
        """
        who = f"{type(self).__name__}.load_state_dict"
        want = {"type", *self.scalar_names, *self.slots}
        if not isinstance(state, dict) or set(state) != want:
            got = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(f"{who}: expected a dict with the keys {sorted(want)}, got {got}")
        if state["type"] != type(self).__name__:
            raise CheckpointError(f"{who}: the state is of a {state['type']!r} optimiser, not {type(self).__name__!r}")
        for k in self.scalar_names:
            if not is_int(state[k]) or state[k] < 0:
                raise CheckpointError(f"{who}: {k} must be an integer >= 0, got {state[k]!r}")
        params, shapes = model.params if model is not None else None, {}
        for slot in self.slots:
            if not isinstance(state[slot], dict):
                raise CheckpointError(f"{who}: slot {slot!r} must be a dict of arrays, "
                                      f"got {type(state[slot]).__name__}")
            for name, a in state[slot].items():
                where = f"{who}: {slot}[{name!r}]"
                if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
                    raise CheckpointError(f"{where} must be a float32 or float64 array, got "
                                          f"{getattr(a, 'dtype', type(a).__name__)}")
                if params is not None and (name not in params or params[name].shape != a.shape
                                           or params[name].dtype != a.dtype):
                    expected = (f"{params[name].dtype} {params[name].shape}" if name in params
                                else f"one of the model's parameters {sorted(params)}")
                    raise CheckpointError(f"{where}: expected {expected}, got {a.dtype} {a.shape}")
                if shapes.setdefault(name, (a.shape, a.dtype)) != (a.shape, a.dtype):
                    raise CheckpointError(f"{where} has {a.dtype} {a.shape}, another slot {shapes[name]}")
                if not np.isfinite(a).all():
                    raise CheckpointError(f"{where} contains NaN or inf")
        for k in self.scalar_names:
            setattr(self, k, int(state[k]))
        self.slots = {slot: {name: np.array(a) for name, a in state[slot].items()} for slot in self.slots}


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    v <- momentum * v - lr * dW;   W <- W + v            (classical momentum, notebook 03)
    v <- momentum * v - lr * dW;   W <- W + momentum * v - lr * dW   (Nesterov)
    momentum=0 is plain SGD: W <- W - lr * dW.

    Nesterov is in Sutskever et al.'s (2013) reparameterised form: the W stored (and
    evaluated, and saved) is the look-ahead point W + momentum * v of the textbook form, so
    the gradient is taken at W as the model holds it and no second copy of W is kept.
    The velocity holds steps (lr is inside it): a new lr scales the next gradient only,
    not the velocity already built up. PyTorch keeps b = sum of past gradients instead and
    multiplies by the current lr; at a constant lr the two are the same update.
    """

    def __init__(self, lr=0.1, momentum=0.0, nesterov=False):
        _positive("SGD", "lr", lr)
        _fraction("SGD", "momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ConfigError(f"SGD: nesterov must be True or False, got {nesterov!r}")
        check_nesterov({"optimizer": "sgd", "momentum": momentum, "nesterov": nesterov}, where="SGD")
        self.lr, self.momentum, self.nesterov = lr, momentum, nesterov
        self.slots = {"velocity": {}}  # per parameter name; saved with a resumable run

    def step(self, model):
        # A Python float scales a float32 array in float32; an np.float64 lr (from np.logspace,
        # say) would upcast every update to float64.
        lr, mu = float(self.lr), float(self.momentum)
        for name, p, g, work in _groups(model):
            lr_g = np.multiply(g, lr, out=work)  # lr * dW, in the flat model's scratch array (else a new one)
            if mu == 0:
                p -= lr_g                        # W <- W - lr dW
                continue
            v = _slot(self, "velocity", name, p)
            v *= mu
            v -= lr_g                            # v <- mu v - lr dW
            if self.nesterov:
                p += mu * v - lr_g               # W <- W + mu v - lr dW
            else:
                p += v                           # W <- W + v


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): per-parameter steps from running moments of the gradient.

    m <- b1 m + (1 - b1) dW;   v <- b2 v + (1 - b2) dW^2
    m_hat = m / (1 - b1^t);    v_hat = v / (1 - b2^t)
    W <- W - lr * m_hat / (sqrt(v_hat) + eps)

    exactly as notebook 03 and PyTorch's torch.optim.Adam write it (eps added to sqrt(v_hat);
    the paper's section 2 folds the corrections into the step size, which moves eps).
    L2 (train's l2_lambda) is added to dW before this step, like PyTorch Adam's weight_decay:
    this is Adam with L2, not AdamW.
    """

    scalar_names = ("t",)

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        _positive("Adam", "lr", lr)
        _fraction("Adam", "beta1", beta1)
        _fraction("Adam", "beta2", beta2)
        _positive("Adam", "eps", eps)
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        self.slots = {"m": {}, "v": {}}  # running moments per parameter name

    def step(self, model):
        self.t += 1
        b1, b2, lr, eps = float(self.beta1), float(self.beta2), float(self.lr), float(self.eps)
        correction1, correction2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for name, p, g, work in _groups(model):
            m, v = _slot(self, "m", name, p), _slot(self, "v", name, p)
            # Every temporary goes into one scratch array s (the flat model's, else a new one).
            m *= b1
            s = np.multiply(g, 1 - b1, out=work)
            m += s                                # m <- b1 m + (1 - b1) dW
            v *= b2
            np.multiply(g, 1 - b2, out=s)
            s *= g
            v += s                                # v <- b2 v + (1 - b2) dW^2
            np.divide(v, correction2, out=s)      # v_hat
            np.sqrt(s, out=s)
            s += eps
            np.divide(m, s, out=s)                # m / (sqrt(v_hat) + eps)
            s *= lr / correction1                 # lr * m_hat / (sqrt(v_hat) + eps)
            p -= s


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def _groups(model):
    """Yield (key, param, grad, work): the arrays one update runs over, key the parameter's name,
    work a scratch array of param's shape for the update's temporaries (None: allocate them).

    A model that keeps all its parameters in one flat array (Sequential does, see
    Sequential.flat) is updated in one pass over that array: the same arithmetic,
    element by element, as one pass per parameter, in a few NumPy calls instead of a few per
    parameter; its key is then the flat array's layout (see _slot). Any other model, or one
    whose arrays were replaced, is updated per parameter.
    """
    flat = model.flat() if hasattr(model, "flat") else None
    if flat is not None:
        yield flat.layout, flat.params, flat.grads, flat.work
        return
    for _, name, p, g in model.parameters():
        yield name, p, g, None


def _slot(optimizer, slot, key, p):
    """The optimiser's state array for p, zeros at first; key: p's name, or the flat model's layout.

    Not setdefault(name, np.zeros_like(p)): that would allocate and zero a parameter-sized
    array on every step, only to throw it away. For the flat model the slots are views of one
    flat array, so state_dict() still names one array per parameter; they are (re)built when
    missing or replaced (load_state_dict copies arrays in), keeping the values they hold.
    """
    slots = optimizer.slots[slot]
    if isinstance(key, str):
        if key not in slots:
            slots[key] = np.zeros_like(p)
        return slots[key]
    layout = key  # ((name, start, stop, shape), ...) of the flat model
    flat_slots = optimizer.__dict__.setdefault("_flat_slots", {})
    flat, views = flat_slots.get(slot, (None, {}))
    if flat is None or flat.shape != p.shape or flat.dtype != p.dtype or len(slots) != len(layout) \
            or any(slots.get(n) is not views.get(n) for n, *_ in layout):
        flat, views = np.zeros_like(p), {}
        for n, start, stop, shape in layout:
            views[n] = flat[start:stop].reshape(shape)
            if n in slots:
                views[n][...] = slots[n]
        slots.clear()
        slots.update(views)
        flat_slots[slot] = (flat, views)
    return flat


def l2_regularize(model, l2_lambda):
    """Add the gradient of the L2 penalty (see l2_penalty), l2_lambda * W, to every grads["W"] in place.

    Biases are not penalised. Call after backward, before the optimiser's step.
    """
    if l2_lambda == 0:  # l2_lambda is checked once per run, by train(), not on every batch
        return
    flat = model.flat() if hasattr(model, "flat") else None
    if flat is not None:  # the weights lie first in the flat array: one pass over all of them
        w = slice(0, flat.n_weights)
        flat.grads[w] += np.multiply(flat.params[w], float(l2_lambda), out=flat.work[w])
        return
    for _, name, p, g in model.parameters():
        if name.endswith(".W"):
            g += float(l2_lambda) * p  # a Python float, so float32 stays float32


def l2_penalty(model, l2_lambda):
    """The L2 penalty l2_lambda / 2 * sum of W**2 over the weights "W" (biases are not penalised)."""
    _number("l2_penalty", "l2_lambda", l2_lambda, lambda v: v >= 0, ">= 0")
    # vdot: one BLAS pass over each weight array, no temporary W**2 array.
    return 0.5 * l2_lambda * sum(float(np.vdot(p, p)) for _, name, p, _ in model.parameters()
                                 if name.endswith(".W"))


def lr_schedule(lr, kind="constant", decay_factor=0.5, decay_steps=1000, total_steps=None, min_lr=0.0):
    """Return a function iteration -> learning rate.

    constant:     lr
    step:         lr * decay_factor ** (t // decay_steps)    (a staircase: the rate drops every decay_steps)
    exponential:  lr * decay_factor ** (t / decay_steps)     (the same decay, smoothly)
    cosine:       min_lr + (lr - min_lr) * (1 + cos(pi * t / total_steps)) / 2

    decay_steps and total_steps are whole numbers >= 1 (2000.0 is taken as 2000, 2.5 refused).
    """
    if not isinstance(kind, str) or kind not in ("constant", "step", "exponential", "cosine"):
        raise ConfigError(f"unknown lr schedule {kind!r}; choose constant, step, exponential or cosine")
    _positive("lr_schedule", "lr", lr)
    if kind in ("step", "exponential"):
        _number("lr_schedule", "decay_factor", decay_factor, lambda v: 0 < v <= 1, "in (0, 1]")
        _number("lr_schedule", "decay_steps", decay_steps, _whole, "a whole number >= 1")
    if kind == "constant":
        return lambda t: lr
    if kind == "step":
        return lambda t: lr * decay_factor ** (t // decay_steps)
    if kind == "exponential":
        return lambda t: lr * decay_factor ** (t / decay_steps)
    _number("lr_schedule", "total_steps (for the cosine schedule)", total_steps, _whole, "a whole number >= 1")
    _number("lr_schedule", "min_lr", min_lr, lambda v: 0 <= v <= lr, f"in [0, lr={lr}]")
    return lambda t: min_lr + (lr - min_lr) * (1 + math.cos(math.pi * min(t, total_steps) / total_steps)) / 2
