"""Every optimiser and schedule against its equation, written out here step by step in plain NumPy.

Two references for each update, in float64 over 20 steps with a fresh gradient every step,
L2 added to the weights' gradients first (as train() does):

* the equations of notebook 03 (and of utils/core/optim.py's docstrings), with the
  learning rate of the schedule's own formula, also written out here;
* PyTorch's documented update rules (torch.optim.SGD and torch.optim.Adam, weight_decay
  standing for our L2), written out here too: PyTorch is not a dependency.

Both are checked on a Sequential (updated through its flat parameter array) and on a model
without one (updated parameter by parameter).
"""
import math

import numpy as np
import pytest

from utils.core.models import mlp
from utils.core.optim import SGD, Adam, l2_regularize, lr_schedule

STEPS, LR, L2 = 20, 0.05, 1e-2
SCHEDULES = {  # the schedule's formula (written out) and lr_schedule's arguments
    "constant": (lambda t: LR, {}),
    "step": (lambda t: LR * 0.5 ** math.floor(t / 6), {"decay_factor": 0.5, "decay_steps": 6}),
    "exponential": (lambda t: LR * 0.5 ** (t / 6), {"decay_factor": 0.5, "decay_steps": 6}),
    "cosine": (lambda t: 0.002 + (LR - 0.002) * (1 + math.cos(math.pi * min(t, 15) / 15)) / 2,
               {"total_steps": 15, "min_lr": 0.002}),  # total_steps < STEPS: the flat tail is checked too
}
OPTIMISERS = {
    "sgd": lambda: SGD(LR),
    "momentum": lambda: SGD(LR, momentum=0.9),
    "nesterov": lambda: SGD(LR, momentum=0.9, nesterov=True),
    "adam": lambda: Adam(LR),
    "adam_eps": lambda: Adam(LR, beta1=0.8, beta2=0.99, eps=1e-3),  # a large eps: where eps sits shows
}


class PerParameter:
    """A model without a flat parameter array: the optimisers update it parameter by parameter."""

    def __init__(self, model):
        self.model, self.params = model, model.params

    def parameters(self):
        return self.model.parameters()


def gradients(params, seed=1):
    """The gradient of every step: fresh random arrays, the same for every contender."""
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(p.shape) for k, p in params.items()} for _ in range(STEPS)]


def run_ours(make_optimiser, schedule_kind, flat):
    """Parameters after each step of our optimiser, driven as train_step drives it; and the start."""
    model = mlp([5, 4, 3], rng=0, dtype=np.float64)
    start = {k: p.copy() for k, p in model.params.items()}
    target = model if flat else PerParameter(model)
    assert model.flat() is not None  # a Sequential keeps its parameters in one flat array
    opt, history = make_optimiser(), []
    schedule = lr_schedule(LR, schedule_kind, **SCHEDULES[schedule_kind][1])
    for t, grads in enumerate(gradients(start)):
        for k, g in model.grads.items():
            g[...] = grads[k]
        l2_regularize(target, L2)
        opt.lr = schedule(t)
        opt.step(target)
        history.append({k: p.copy() for k, p in model.params.items()})
    return start, history


def with_l2(W, grads):
    """dW + L2 * W for the weights; biases are not penalised."""
    return {k: g + L2 * W[k] if k.endswith(".W") else g for k, g in grads.items()}


# ---------------------------------------------------------------- the equations of notebook 03

def notebook_sgd(W, grads, lr, mu=0.0, nesterov=False, **_):
    v = {k: np.zeros_like(w) for k, w in W.items()}
    for g, eta in zip(grads, lr):
        g = with_l2(W, g)
        for k in W:
            if mu == 0:
                W[k] = W[k] - eta * g[k]                     # W <- W - lr dW
                continue
            v[k] = mu * v[k] - eta * g[k]                    # v <- mu v - lr dW
            if nesterov:
                W[k] = W[k] + mu * v[k] - eta * g[k]         # W <- W + mu v - lr dW
            else:
                W[k] = W[k] + v[k]                           # W <- W + v
        yield {k: w.copy() for k, w in W.items()}


def notebook_adam(W, grads, lr, b1=0.9, b2=0.999, eps=1e-8, **_):
    m, v = ({k: np.zeros_like(w) for k, w in W.items()} for _ in range(2))
    for t, (g, eta) in enumerate(zip(grads, lr), 1):
        g = with_l2(W, g)
        for k in W:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            m_hat = m[k] / (1 - b1 ** t)
            v_hat = v[k] / (1 - b2 ** t)
            W[k] = W[k] - eta * m_hat / (np.sqrt(v_hat) + eps)
        yield {k: w.copy() for k, w in W.items()}


# ---------------------------------------------------------------- PyTorch's documented rules

def torch_sgd(W, grads, lr, mu=0.0, nesterov=False, **_):
    """torch.optim.SGD (dampening 0): b <- mu b + g (b = g at the first step); p <- p - lr * b, or
    with nesterov p <- p - lr * (g + mu b). weight_decay adds wd * p to g first."""
    b = {}
    for g, eta in zip(grads, lr):
        g = with_l2(W, g)
        for k in W:
            if mu == 0:
                W[k] = W[k] - eta * g[k]
                continue
            b[k] = g[k].copy() if k not in b else mu * b[k] + g[k]
            W[k] = W[k] - eta * (g[k] + mu * b[k] if nesterov else b[k])
        yield {k: w.copy() for k, w in W.items()}


def torch_adam(W, grads, lr, b1=0.9, b2=0.999, eps=1e-8, **_):
    """torch.optim.Adam (amsgrad off): denom = sqrt(v) / sqrt(1 - b2^t) + eps;
    p <- p - lr / (1 - b1^t) * m / denom. weight_decay adds wd * p to g first."""
    m, v = ({k: np.zeros_like(w) for k, w in W.items()} for _ in range(2))
    for t, (g, eta) in enumerate(zip(grads, lr), 1):
        g = with_l2(W, g)
        for k in W:
            m[k] = m[k] * b1 + g[k] * (1 - b1)                 # exp_avg.lerp_(grad, 1 - beta1)
            v[k] = v[k] * b2 + g[k] * g[k] * (1 - b2)          # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
            denom = np.sqrt(v[k]) / math.sqrt(1 - b2 ** t) + eps
            W[k] = W[k] - eta / (1 - b1 ** t) * m[k] / denom
        yield {k: w.copy() for k, w in W.items()}


def hyper(name):
    opt = OPTIMISERS[name]()
    if isinstance(opt, Adam):
        return {"b1": opt.beta1, "b2": opt.beta2, "eps": opt.eps}
    return {"mu": opt.momentum, "nesterov": opt.nesterov}


def reference(kind, name, start, schedule_kind):
    rule = {("notebook", False): notebook_sgd, ("notebook", True): notebook_adam,
            ("torch", False): torch_sgd, ("torch", True): torch_adam}[kind, name.startswith("adam")]
    lr = [SCHEDULES[schedule_kind][0](t) for t in range(STEPS)]
    W = {k: p.copy() for k, p in start.items()}
    return list(rule(W, gradients(start), lr, **hyper(name)))


def assert_same(ours, theirs, what):
    for t, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-14, err_msg=f"{what}: {k} after step {t + 1}")


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "per-parameter"])
@pytest.mark.parametrize("schedule_kind", SCHEDULES)
@pytest.mark.parametrize("name", OPTIMISERS)
def test_optimiser_follows_the_notebook_equation(name, schedule_kind, flat):
    start, ours = run_ours(OPTIMISERS[name], schedule_kind, flat)
    assert_same(ours, reference("notebook", name, start, schedule_kind), f"{name}, {schedule_kind} lr")
    assert not np.allclose(ours[-1]["0.W"], start["0.W"])  # it did move


@pytest.mark.parametrize("schedule_kind", SCHEDULES)
@pytest.mark.parametrize("name", OPTIMISERS)
def test_optimiser_matches_pytorchs_rule(name, schedule_kind):
    start, ours = run_ours(OPTIMISERS[name], schedule_kind, flat=True)
    torch = reference("torch", name, start, schedule_kind)
    if schedule_kind == "constant" or name in ("sgd", "adam", "adam_eps"):
        assert_same(ours, torch, f"{name} against PyTorch, {schedule_kind} lr")
    else:
        # Where the two differ: with momentum and a changing lr. Our velocity holds steps,
        # v = -sum mu^(t-s) lr_s g_s, each gradient scaled by the lr at its own step; PyTorch's
        # buffer holds gradients, b = sum mu^(t-s) g_s, all scaled by the current lr. Both are
        # the notebook's momentum at a constant lr (v = -lr b), as the branch above checks.
        assert not np.allclose(ours[-1]["0.W"], torch[-1]["0.W"], rtol=1e-6, atol=0)


@pytest.mark.parametrize("schedule_kind", SCHEDULES)
def test_schedule_is_its_formula(schedule_kind):
    formula, args = SCHEDULES[schedule_kind]
    schedule = lr_schedule(LR, schedule_kind, **args)
    lrs = [schedule(t) for t in range(STEPS)]
    np.testing.assert_allclose(lrs, [formula(t) for t in range(STEPS)], rtol=1e-14, atol=0)
    assert schedule_kind == "constant" or len(set(lrs)) > 3  # the lr does change over the steps


def test_adam_puts_eps_outside_the_corrected_root():
    """The first step from m = v = 0 with gradient g: lr * g / (|g| + eps) exactly, not the paper's
    reordered lr * g / (|g| + eps * sqrt(1 - b2))."""
    model = mlp([1, 1], rng=0, dtype=np.float64)
    w0 = model.params["0.W"].copy()
    model.grads["0.W"][...], model.grads["0.b"][...] = 1e-3, 0
    Adam(lr=0.1, eps=1e-3).step(model)
    np.testing.assert_allclose(model.params["0.W"], w0 - 0.1 * 1e-3 / (1e-3 + 1e-3), rtol=1e-14)
