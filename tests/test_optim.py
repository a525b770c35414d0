"""Optimisers, L2 regularisation and learning-rate schedules, on small hand-checkable cases."""

import tracemalloc

import numpy as np
import pytest

from module import Linear, Sequential, mlp
from utils.optim import SGD, Adam, l2_penalty, l2_regularize, lr_schedule


def one_weight_model(w, g):
    layer = Linear(1, 1, dtype=np.float64)
    layer.params["W"][:] = w
    layer.grads["W"][:] = g
    layer.params["b"][:] = 0
    layer.grads["b"][:] = 0
    return Sequential([layer])


def test_plain_sgd_step():
    model = one_weight_model(1.0, 0.5)
    SGD(lr=0.1).step(model)
    assert model.params["0.W"][0, 0] == pytest.approx(0.95)


def test_momentum_accumulates_velocity():
    model = one_weight_model(1.0, 1.0)
    opt = SGD(lr=0.1, momentum=0.9)
    opt.step(model)   # v = -0.1
    opt.step(model)   # v = -0.09 - 0.1 = -0.19
    assert model.params["0.W"][0, 0] == pytest.approx(1 - 0.1 - 0.19)


def test_nesterov_looks_ahead():
    model = one_weight_model(1.0, 1.0)
    SGD(lr=0.1, momentum=0.9, nesterov=True).step(model)  # v = -0.1; W += 0.9 v - 0.1 g
    assert model.params["0.W"][0, 0] == pytest.approx(1 - 0.09 - 0.1)


def test_adam_first_step_is_lr_times_sign():
    model = one_weight_model(1.0, 3.0)
    Adam(lr=0.01).step(model)
    assert model.params["0.W"][0, 0] == pytest.approx(0.99, abs=1e-6)


@pytest.mark.parametrize("opt", [SGD(0.1), SGD(0.1, momentum=0.9), SGD(0.1, 0.9, nesterov=True), Adam(0.05)])
def test_optimisers_minimise_a_quadratic(opt):
    model = one_weight_model(5.0, 0.0)
    for _ in range(300):
        w = model.params["0.W"]
        model.layers[0].grads["W"] = 2 * (w - 2.0)  # gradient of (w - 2)^2
        opt.step(model)
    assert model.params["0.W"][0, 0] == pytest.approx(2.0, abs=1e-2)


def test_updates_keep_float32():
    model = mlp([4, 3, 2], rng=0)
    for g in model.grads.values():
        g[...] = 1
    for opt in (SGD(0.1), SGD(0.1, 0.9), Adam()):
        opt.step(model)
        assert all(p.dtype == np.float32 for p in model.params.values())


def test_l2_penalises_weights_not_biases():
    model = mlp([3, 2], rng=0, dtype=np.float64)
    model.params["0.b"][:] = 5.0
    for g in model.grads.values():
        g[...] = 0
    W = model.params["0.W"].copy()
    l2_regularize(model, 0.1)
    assert l2_penalty(model, 0.1) == pytest.approx(0.05 * np.sum(W ** 2))
    assert np.allclose(model.grads["0.W"], 0.1 * W)
    assert np.all(model.grads["0.b"] == 0)
    l2_regularize(model, 0.0)
    assert np.allclose(model.grads["0.W"], 0.1 * W)  # lambda 0 adds nothing


def _peak_bytes_of_second_step(make_update, value):
    """Bytes allocated at the peak of make_update(value)(model), after a first call made the slots."""
    model = Sequential([Linear(1000, 1000, rng=0)])  # W: 4 MB in float32, 8 MB in float64
    for g in model.grads.values():
        g[...] = 1
    update = make_update(value)
    update(model)
    tracemalloc.start()
    try:
        update(model)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert {a.dtype for a in model.params.values()} == {np.dtype(np.float32)}


@pytest.mark.parametrize("make_update", [
    lambda value: lambda model: l2_regularize(model, value),
    lambda value: SGD(value).step,
    lambda value: SGD(value, momentum=0.9).step,
    lambda value: Adam(value).step,
], ids=["l2", "sgd", "momentum", "adam"])
def test_numpy_float64_hyperparameters_do_not_upcast_float32_updates(make_update):
    """An np.float64 lr (from np.logspace, say) must not turn lr * grad into a float64 temporary."""
    python_float = _peak_bytes_of_second_step(make_update, 1e-3)
    numpy_float64 = _peak_bytes_of_second_step(make_update, np.float64(1e-3))
    assert numpy_float64 <= python_float + 1e5, f"{numpy_float64:,} bytes at the peak, {python_float:,} expected"


def test_schedules():
    assert lr_schedule(0.1)(10_000) == 0.1
    step = lr_schedule(0.1, "step", decay_factor=0.5, decay_steps=100)
    assert [step(t) for t in (0, 99, 100, 250)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    expo = lr_schedule(0.1, "exponential", decay_factor=0.5, decay_steps=100)
    assert expo(50) == pytest.approx(0.1 * 0.5 ** 0.5)
    cos = lr_schedule(0.1, "cosine", total_steps=100, min_lr=0.01)
    assert (cos(0), cos(50), cos(100), cos(200)) == pytest.approx((0.1, 0.055, 0.01, 0.01))


@pytest.mark.parametrize("call, message", [
    (lambda: SGD(lr=-1), "lr must be positive"),
    (lambda: SGD(lr=0.1, momentum=1.5), "momentum"),
    (lambda: SGD(lr=0.1, nesterov=True), "nesterov"),
    (lambda: Adam(beta1=1.0), "beta1"),
    (lambda: lr_schedule(0.1, "linear"), "unknown lr schedule 'linear'"),
    (lambda: lr_schedule(0.1, "step", decay_factor=0), "decay_factor"),
    (lambda: lr_schedule(0.1, "step", decay_steps=0), "decay_steps"),
])
def test_bad_settings(call, message):
    with pytest.raises(ValueError, match=message):
        call()


