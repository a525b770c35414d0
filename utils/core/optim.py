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

    v <- momentum * v - lr * dW;   W <- W + v            (classical momentum)
    W <- W + momentum * v - lr * dW, after updating v    (Nesterov)
    momentum=0 is plain SGD: W <- W - lr * dW.
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
        lr = float(self.lr)
        for _, name, p, g in model.parameters():
            if self.momentum == 0:
                p -= lr * g
                continue
            v = _slot(self.slots["velocity"], name, p)
            v *= self.momentum
            v -= lr * g
            p += self.momentum * v - lr * g if self.nesterov else v


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): per-parameter steps from running moments of the gradient.

    m <- b1 m + (1 - b1) dW;  v <- b2 v + (1 - b2) dW^2;  W <- W - lr * m_hat / (sqrt(v_hat) + eps)
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
        # Bias corrections folded into the step size, as in the paper's section 2.
        step = self.lr * math.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        for _, name, p, g in model.parameters():
            m, v = _slot(self.slots["m"], name, p), _slot(self.slots["v"], name, p)
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p -= p.dtype.type(step) * m / (np.sqrt(v) + self.eps)


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def _slot(slots, name, p):
    """The optimiser's state array for parameter name, created as zeros on first use.

    Not slots.setdefault(name, np.zeros_like(p)): that would allocate and zero a
    parameter-sized array on every step, only to throw it away.
    """
    if name not in slots:
        slots[name] = np.zeros_like(p)
    return slots[name]


def l2_regularize(model, l2_lambda):
    """Add the gradient of the L2 penalty (see l2_penalty), l2_lambda * W, to every grads["W"] in place.

    Biases are not penalised. Call after backward, before the optimiser's step.
    """
    if l2_lambda == 0:  # l2_lambda is checked once per run, by train(), not on every batch
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
    step:         lr * decay_factor ** (t // decay_steps)    (the course projects' decay)
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
