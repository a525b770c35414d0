"""The flat parameter array: one update pass over all of a Sequential's parameters.

It must change nothing but speed: the same bits as the update parameter by parameter, the
same state_dict, and a safe fallback when a layer's arrays are replaced.
"""
import numpy as np
import pytest

from module import Linear
from utils.core.models import Sequential, lenet5, mlp
from utils.core.optim import SGD, Adam, l2_regularize


class PerParameter:
    """The same model without its flat array: updated parameter by parameter."""

    def __init__(self, model):
        self.model, self.params = model, model.params

    def parameters(self):
        return self.model.parameters()


def test_parameters_and_gradients_are_views_of_two_flat_arrays_weights_first():
    model = mlp([5, 4, 3], rng=0)
    flat = model.flat()
    assert flat.params.dtype == flat.grads.dtype == np.float32
    assert [name for name, *_ in flat.layout] == ["0.W", "2.W", "0.b", "2.b"]
    assert flat.n_weights == 5 * 4 + 4 * 3
    for name, start, stop, shape in flat.layout:
        assert np.shares_memory(model.params[name], flat.params[start:stop])
        assert np.shares_memory(model.grads[name], flat.grads[start:stop])
        assert model.params[name].shape == shape


def test_packing_keeps_the_values():
    layers = [Linear(6, 5, rng=1), Linear(5, 2, rng=2)]
    before = [{k: v.copy() for k, v in layer.params.items()} for layer in layers]
    model = Sequential(layers)
    for layer, values in zip(model.layers, before):
        for k, v in values.items():
            np.testing.assert_array_equal(layer.params[k], v)


@pytest.mark.parametrize("make", [lambda: SGD(0.1), lambda: SGD(0.1, momentum=0.9),
                                  lambda: SGD(0.1, momentum=0.9, nesterov=True), lambda: Adam(0.01)],
                         ids=["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("build", [lambda: mlp([7, 6, 3], rng=0), lambda: lenet5(image_size=16, rng=0)],
                         ids=["mlp", "lenet5"])
def test_flat_update_is_bit_identical_to_the_update_per_parameter(make, build):
    flat_model, per_model = build(), build()
    flat_opt, per_opt = make(), make()
    rng = np.random.default_rng(0)
    for _ in range(5):
        for name, g in flat_model.grads.items():
            g[...] = rng.standard_normal(g.shape)
            per_model.grads[name][...] = g
        l2_regularize(flat_model, 1e-3)
        l2_regularize(PerParameter(per_model), 1e-3)
        flat_opt.step(flat_model)
        per_opt.step(PerParameter(per_model))
    for name, p in flat_model.params.items():
        np.testing.assert_array_equal(p, per_model.params[name])
    flat_state, per_state = flat_opt.state_dict(), per_opt.state_dict()
    assert flat_state.keys() == per_state.keys()
    for slot in flat_opt.slots:
        assert flat_state[slot].keys() == per_state[slot].keys()
        for name, a in flat_state[slot].items():
            np.testing.assert_array_equal(a, per_state[slot][name])


def test_a_replaced_gradient_array_falls_back_to_the_update_per_parameter():
    model = mlp([3, 2], rng=0, dtype=np.float64)
    assert model.flat() is not None
    model.layers[0].grads["W"] = np.ones((3, 2))  # a student's layer may assign instead of writing into
    assert model.flat() is None
    w = model.params["0.W"].copy()
    SGD(0.5).step(model)
    np.testing.assert_array_equal(model.params["0.W"], w - 0.5)


def test_loaded_optimiser_state_is_used_by_the_flat_update():
    """load_state_dict copies arrays in; the next flat step must start from them, not from zeros."""
    rng = np.random.default_rng(0)
    grads = [{k: rng.standard_normal(g.shape).astype(np.float32) for k, g in mlp([4, 3, 2]).grads.items()}
             for _ in range(4)]
    straight, resumed = mlp([4, 3, 2], rng=0), mlp([4, 3, 2], rng=0)
    opt = Adam(0.01)
    for g in grads:
        for k, a in g.items():
            straight.grads[k][...] = a
        opt.step(straight)
    first = Adam(0.01)
    for g in grads[:2]:
        for k, a in g.items():
            resumed.grads[k][...] = a
        first.step(resumed)
    second = Adam(0.01)
    second.load_state_dict({k: {n: a.copy() for n, a in v.items()} if isinstance(v, dict) else v
                            for k, v in first.state_dict().items()}, resumed)
    for g in grads[2:]:
        for k, a in g.items():
            resumed.grads[k][...] = a
        second.step(resumed)
    for k, p in straight.params.items():
        np.testing.assert_array_equal(p, resumed.params[k])
