"""Optimisers, L2 regularisation and learning-rate schedules, on small hand-checkable cases."""

import tracemalloc

import numpy as np
import pytest

from module import Linear
from utils.core.models import Sequential, mlp
from utils.core.optim import SGD, Adam, l2_penalty, l2_regularize, lr_schedule
from utils.core.train import train
from utils.plumbing.errors import CheckpointError, ConfigError


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




def _train_steps(model, opt, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for g in model.grads.values():
            g[...] = rng.standard_normal(g.shape)
        opt.step(model)


@pytest.mark.parametrize("make", [lambda: SGD(0.1, momentum=0.9), lambda: SGD(0.1, 0.9, nesterov=True),
                                  lambda: SGD(0.1), lambda: Adam(0.01)], ids=["momentum", "nesterov", "plain", "adam"])
def test_state_dict_round_trip_resumes_bit_identically(make):
    straight, first = mlp([5, 4, 3], rng=0), mlp([5, 4, 3], rng=0)
    opt = make()
    _train_steps(straight, opt, 3, seed=1)
    _train_steps(straight, opt, 2, seed=2)
    opt_a = make()
    _train_steps(first, opt_a, 3, seed=1)
    state = {k: {n: a.copy() for n, a in v.items()} if isinstance(v, dict) else v
             for k, v in opt_a.state_dict().items()}  # as if written to a file and read back
    opt_b = make()
    opt_b.load_state_dict(state, first)
    _train_steps(first, opt_b, 2, seed=2)
    for k, p in straight.params.items():
        np.testing.assert_array_equal(p, first.params[k])
    assert opt_b.state_dict()["type"] == type(opt).__name__


def _adam_state():
    model = mlp([3, 2], rng=0)
    opt = Adam()
    _train_steps(model, opt, 2, seed=0)
    return model, opt.state_dict()


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("t"), r"keys \['m', 't', 'type', 'v'\]"),
    (lambda s: s.update(extra=1), "expected a dict with the keys"),
    (lambda s: s.update(type="SGD"), "the state is of a 'SGD' optimiser, not 'Adam'"),
    (lambda s: s.update(t=-1), "t must be an integer >= 0, got -1"),
    (lambda s: s.update(t=2.5), "t must be an integer >= 0, got 2.5"),
    (lambda s: s.update(m=[1, 2]), "slot 'm' must be a dict of arrays, got list"),
    (lambda s: s["m"].update({"0.W": s["m"]["0.W"].astype(np.int64)}), r"m\['0.W'\] must be a float32 or float64 array"),
    (lambda s: s["m"].update({"0.W": np.zeros((2, 3), np.float32)}), r"m\['0.W'\]: expected float32 \(3, 2\), got float32 \(2, 3\)"),
    (lambda s: s["m"].update({"0.W": s["m"]["0.W"].astype(np.float64)}), r"expected float32 \(3, 2\), got float64"),
    (lambda s: s["v"].update({"9.W": np.zeros(2, np.float32)}), r"v\['9.W'\]: expected one of the model's parameters"),
    (lambda s: s["v"]["0.b"].__setitem__(0, np.nan), r"v\['0.b'\] contains NaN or inf"),
    (lambda s: s["v"].update({"0.b": "abc"}), r"v\['0.b'\] must be a float32 or float64 array, got str"),
])
def test_load_state_dict_refuses_a_bad_state_before_changing_anything(change, message):
    model, state = _adam_state()
    state = {k: dict(v) if isinstance(v, dict) else v for k, v in state.items()}
    state["v"]["0.b"] = state["v"]["0.b"].copy()
    change(state)
    opt = Adam()
    with pytest.raises(CheckpointError, match=message):
        opt.load_state_dict(state, model)
    assert opt.t == 0 and opt.slots == {"m": {}, "v": {}}
    with pytest.raises(CheckpointError, match="expected a dict"):
        opt.load_state_dict([("t", 1)])


BAD_SETTINGS = [
    (lambda: SGD(lr=float("inf")), r"SGD: lr must be positive \(a finite number\), got inf"),
    (lambda: SGD(lr=float("nan")), "lr must be positive .*got nan"),
    (lambda: SGD(lr="0.1"), "lr must be positive .*got '0.1'"),
    (lambda: SGD(lr=None), "lr must be positive .*got None"),
    (lambda: SGD(lr=np.array([0.1])), "lr must be positive"),
    (lambda: SGD(lr=True), "lr must be positive .*got True"),
    (lambda: SGD(lr=10 ** 400), "lr must be positive"),
    (lambda: SGD(0.1, momentum=-0.5), r"momentum must be in \[0, 1\)"),
    (lambda: SGD(0.1, momentum="0.9"), r"momentum must be in \[0, 1\).*'0.9'"),
    (lambda: SGD(0.1, momentum=0.9, nesterov="no"), "SGD: nesterov must be True or False, got 'no'"),
    (lambda: SGD(0.1, momentum=0.9, nesterov=1), "nesterov must be True or False, got 1"),
    (lambda: Adam(lr=0), r"Adam: lr must be positive"),
    (lambda: Adam(beta2=float("nan")), r"Adam: beta2 must be in \[0, 1\)"),
    (lambda: Adam(eps=0), "Adam: eps must be positive"),
    (lambda: l2_penalty(mlp([3, 2]), float("inf")), "l2_penalty: l2_lambda must be >= 0 .*inf"),
    (lambda: train(mlp([3, 2]), *[np.ones((2, 3), np.float32), np.zeros(2, int)] * 2, l2_lambda=-1e-4),
     "train.l2_lambda = -0.0001: expected"),  # checked once per run, not by l2_regularize on every batch
    (lambda: l2_penalty(mlp([3, 2]), "0.1"), "l2_penalty: l2_lambda must be >= 0 .*'0.1'"),
    (lambda: lr_schedule(float("nan")), "lr_schedule: lr must be positive"),
    (lambda: lr_schedule(0.1, None), "unknown lr schedule None"),
    (lambda: lr_schedule(0.1, "step", decay_steps=float("inf")), "decay_steps must be a whole number >= 1 .*inf"),
    (lambda: lr_schedule(0.1, "step", decay_steps=float("nan")), "decay_steps must be a whole number"),
    (lambda: lr_schedule(0.1, "exponential", decay_steps=2.5), "decay_steps must be a whole number >= 1 .*2.5"),
    (lambda: lr_schedule(0.1, "step", decay_steps="100"), "decay_steps must be a whole number"),
    (lambda: lr_schedule(0.1, "step", decay_factor=1.5), r"decay_factor must be in \(0, 1\] .*1.5"),
    (lambda: lr_schedule(0.1, "step", decay_factor=float("nan")), r"decay_factor must be in \(0, 1\]"),
    (lambda: lr_schedule(0.1, "cosine"), "total_steps .* must be a whole number >= 1 .*None"),
    (lambda: lr_schedule(0.1, "cosine", total_steps=float("inf")), "total_steps"),
    (lambda: lr_schedule(0.1, "cosine", total_steps=100, min_lr=0.5), r"min_lr must be in \[0, lr=0.1\]"),
]


@pytest.mark.parametrize("call, message", BAD_SETTINGS, ids=[m[:40] for _, m in BAD_SETTINGS])
def test_bad_settings_name_the_parameter_and_the_value(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_whole_float_decay_steps_still_work():
    assert lr_schedule(0.1, "step", decay_factor=0.5, decay_steps=100.0)(250) == pytest.approx(0.025)
    assert SGD(np.float64(0.1), momentum=np.float32(0.5), nesterov=np.bool_(True)).nesterov
