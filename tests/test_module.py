"""Every layer's backward pass against central differences, in float64, plus the layer contract."""
import numpy as np
import pytest

from module import (LAYERS, Dropout, LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Softmax,
                    SoftmaxCrossEntropy, Tanh, mlp, softmax)
from utils.gradcheck import check_layer, check_loss

TOL = 1e-6


class SeededDropout(Dropout):
    """Dropout whose mask is the same on every forward call, so finite differences see one function."""

    def forward(self, x):
        self.rng = np.random.default_rng(7)
        return super().forward(x)


@pytest.mark.parametrize("make", [
    lambda: Linear(5, 4, rng=1, dtype=np.float64),
    lambda: Linear(3, 7, init="glorot", rng=2, dtype=np.float64),
    ReLU, LeakyReLU, lambda: LeakyReLU(0.2), Sigmoid, Tanh, Softmax,
    lambda: SeededDropout(0.4),
], ids=["linear", "linear-glorot", "relu", "leaky-relu", "leaky-relu-0.2", "sigmoid", "tanh", "softmax",
        "dropout"])
def test_layer_gradients(make):
    layer = make()
    x = np.random.default_rng(0).standard_normal((3, layer.in_features if hasattr(layer, "in_features") else 5))
    if layer.params:  # non-zero biases, so a backward that ignores them cannot pass
        layer.params["b"][:] = np.random.default_rng(3).standard_normal(layer.params["b"].shape)
    errors = check_layer(layer, x, rng=4)
    assert max(errors.values()) < TOL, errors
    assert set(layer.grads) == set(layer.params)


def test_elementwise_layers_take_any_shape():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    for layer in (ReLU(), LeakyReLU(), Sigmoid(), Tanh(), SeededDropout(0.3)):
        assert max(check_layer(layer, x, rng=1).values()) < TOL, layer


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    logits, y = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6)
    assert check_loss(SoftmaxCrossEntropy(), logits, y) < TOL


def test_softmax_cross_entropy_value_and_stability():
    loss_fn = SoftmaxCrossEntropy()
    logits = np.array([[1.0, 2.0, 3.0]])
    expected = -np.log(np.exp(3) / np.exp([1, 2, 3]).sum())
    assert loss_fn.forward(logits, np.array([2])) == pytest.approx(expected)
    # Huge logits would overflow a naive exp; the shifted form stays finite and exact.
    assert loss_fn.forward(np.array([[1000.0, 0.0]]), np.array([0])) == pytest.approx(0.0)
    assert loss_fn.forward(np.array([[1000.0, 0.0]]), np.array([1])) == pytest.approx(1000.0)
    assert np.allclose(softmax(np.array([[1e4, 1e4]])), 0.5)


def test_whole_mlp_gradient():
    for activation in ("relu", "tanh", "sigmoid", "leaky_relu"):
        model = mlp([6, 5, 4, 3], activation, rng=0, dtype=np.float64)
        x = np.random.default_rng(1).standard_normal((4, 6))
        errors = check_layer(model, x, rng=2)
        assert max(errors.values()) < TOL, (activation, errors)
        assert set(errors) == {"x", "0.W", "0.b", "2.W", "2.b", "4.W", "4.b"}


def test_need_dx_false_skips_only_the_input_gradient():
    model = mlp([4, 3, 2], rng=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((5, 4))
    model.forward(x)
    dout = np.ones((5, 2))
    assert model.backward(dout).shape == x.shape
    grads = {k: v.copy() for k, v in model.grads.items()}
    assert model.backward(dout, need_dx=False) is None
    assert all(np.array_equal(grads[k], v) for k, v in model.grads.items())


def test_backward_never_changes_weights():
    model = mlp([4, 3, 2], rng=0)
    before = {k: v.copy() for k, v in model.params.items()}
    model.forward(np.ones((2, 4), np.float32))
    model.backward(np.ones((2, 2), np.float32))
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())


def test_dtypes_are_kept():
    for dtype in (np.float32, np.float64):
        model = mlp([4, 3, 2], "tanh", dropout=0.2, rng=0, dtype=dtype)
        x = np.ones((2, 4), dtype)
        out = model.forward(x)
        loss_fn = SoftmaxCrossEntropy()
        loss_fn.forward(out, np.array([0, 1]))
        dlogits = loss_fn.backward()
        model.backward(dlogits)
        assert out.dtype == dlogits.dtype == dtype
        assert all(g.dtype == dtype for g in model.grads.values())
        assert model.predict_proba(x).dtype == dtype


def test_same_seed_same_model():
    a, b = mlp([8, 4, 2], rng=42), mlp([8, 4, 2], rng=np.random.default_rng(42))
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.params["0.W"], mlp([8, 4, 2], rng=43).params["0.W"])


def test_initialisation_scale():
    he = Linear(1000, 500, init="he", rng=0).params["W"]
    glorot = Linear(1000, 500, init="glorot", rng=0).params["W"]
    assert he.std() == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    assert glorot.std() == pytest.approx(np.sqrt(2 / 1500), rel=0.02)
    assert isinstance(mlp([4, 3, 2], "sigmoid").layers[0], Linear)
    assert mlp([4, 3, 2], "sigmoid").layers[0].init == "glorot"
    assert mlp([4, 3, 2], "relu").layers[0].init == "he"


def test_dropout_modes():
    d = Dropout(0.5, rng=0)
    x = np.ones((1000, 100), np.float32)
    out = d.forward(x)
    assert set(np.unique(out)) == {0.0, 2.0}
    assert abs(out.mean() - 1) < 0.02  # inverted dropout keeps the expected activation
    d.eval()
    assert d.forward(x) is x


def test_predict_and_modes():
    model = mlp([4, 8, 3], dropout=0.5, rng=0)
    x = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    p = model.predict_proba(x)
    assert p.shape == (10, 3) and np.allclose(p.sum(axis=1), 1)
    assert np.array_equal(model.predict(x), p.argmax(axis=1))
    assert model.training  # predict leaves the mode as it found it
    assert np.array_equal(model.predict_proba(x), p)  # eval mode: no dropout noise


def test_config_round_trip():
    model = mlp([4, 8, 3], "leaky_relu", dropout=0.1, rng=0)
    rebuilt = Sequential.from_config(model.config())
    assert rebuilt.config() == model.config()
    assert "Linear(in_features=4, out_features=8" in repr(model)
    assert set(LAYERS) >= {"Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Dropout"}


@pytest.mark.parametrize("call, message", [
    (lambda: Linear(4, 3).forward(np.ones((2, 5), np.float32)), r"Linear.*\(N, 4\).*\(2, 5\)"),
    (lambda: Linear(4, 3).forward(np.ones(4, np.float32)), r"Linear.*\(N, 4\).*\(4,\)"),
    (lambda: mlp([4, 3]).predict(np.full((1, 4), np.nan, np.float32)), "predict_proba.*NaN or inf"),
    (lambda: SoftmaxCrossEntropy().forward(np.ones((2, 3)), np.array([0, 3])), r"labels must lie in \[0, 3\)"),
    (lambda: SoftmaxCrossEntropy().forward(np.ones((2, 3)), np.array([0.0, 1.0])), "integer labels"),
    (lambda: SoftmaxCrossEntropy().forward(np.ones((2, 3)), np.array([0])), r"shape \(2,\)"),
    (lambda: mlp([784, 10], "softplus"), "unknown activation 'softplus'"),
    (lambda: mlp([784]), "at least an input and an output"),
    (lambda: Sequential([]), "empty"),
    (lambda: Dropout(1.0), r"Dropout: p must be in \[0, 1\)"),
    (lambda: Sequential.from_config([{"type": "Exec"}]), "unknown layer type 'Exec'"),
])
def test_bad_input_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
