"""Optimisers, L2 regularisation and learning-rate schedules.

One signature for every optimiser: ``optimizer.step(model)`` reads each parameter's
gradient from the model and updates the parameter in place; ``optimizer.lr`` is the
current learning rate, which the training loop sets from a schedule before each step.
"""
import math

import numpy as np


class SGD:
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    v <- momentum * v - lr * dW;   W <- W + v            (classical momentum)
    W <- W + momentum * v - lr * dW, after updating v    (Nesterov)
    momentum=0 is plain SGD: W <- W - lr * dW.
    """

    def __init__(self, lr=0.1, momentum=0.0, nesterov=False):
        if lr <= 0:
            raise ValueError(f"SGD: lr must be positive, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs a momentum > 0")
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


class Adam:
    """Adam (Kingma & Ba, 2015): per-parameter steps from running moments of the gradient.

    m <- b1 m + (1 - b1) dW;  v <- b2 v + (1 - b2) dW^2;  W <- W - lr * m_hat / (sqrt(v_hat) + eps)
    """

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        if lr <= 0:
            raise ValueError(f"Adam: lr must be positive, got {lr}")
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"Adam: beta1 and beta2 must be in [0, 1), got {beta1}, {beta2}")
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
    if l2_lambda == 0:
        return
    for _, name, p, g in model.parameters():
        if name.endswith(".W"):
            g += float(l2_lambda) * p  # a Python float, so float32 stays float32


def l2_penalty(model, l2_lambda):
    """The L2 penalty l2_lambda / 2 * sum of W**2 over the weights "W" (biases are not penalised)."""
    # vdot: one BLAS pass over each weight array, no temporary W**2 array.
    return 0.5 * l2_lambda * sum(float(np.vdot(p, p)) for _, name, p, _ in model.parameters()
                                 if name.endswith(".W"))


def lr_schedule(lr, kind="constant", decay_factor=0.5, decay_steps=1000, total_steps=None, min_lr=0.0):
    """Return a function iteration -> learning rate.

    constant:     lr
    step:         lr * decay_factor ** (t // decay_steps)    (the course projects' decay)
    exponential:  lr * decay_factor ** (t / decay_steps)     (the same decay, smoothly)
    cosine:       min_lr + (lr - min_lr) * (1 + cos(pi * t / total_steps)) / 2
    """
    if lr <= 0:
        raise ValueError(f"learning rate must be positive, got {lr}")
    if kind in ("step", "exponential"):
        if not 0 < decay_factor <= 1:
            raise ValueError(f"decay_factor must be in (0, 1], got {decay_factor}")
        if decay_steps < 1:
            raise ValueError(f"decay_steps must be at least 1, got {decay_steps}")
    if kind == "constant":
        return lambda t: lr
    if kind == "step":
        return lambda t: lr * decay_factor ** (t // decay_steps)
    if kind == "exponential":
        return lambda t: lr * decay_factor ** (t / decay_steps)
    if kind == "cosine":
        if not total_steps or total_steps < 1:
            raise ValueError(f"the cosine schedule needs total_steps >= 1, got {total_steps}")
        return lambda t: min_lr + (lr - min_lr) * (1 + math.cos(math.pi * min(t, total_steps) / total_steps)) / 2
    raise ValueError(f"unknown lr schedule {kind!r}; choose constant, step, exponential or cosine")
