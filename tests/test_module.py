"""Every layer's backward pass against central differences, in float64, plus the layer contract."""
import numpy as np
import pytest

from module import (
    Conv2D,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    MaxPool2D,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
    softmax,
)
from utils.core.models import LAYERS, Sequential, evaluating, from_config, lenet5, mlp, param_shapes, summary
from utils.plumbing.random_bits import uniform_at_least
from utils.teaching.gradcheck import GRADCHECK_TOL, gradcheck_layer, gradcheck_loss

TOL = GRADCHECK_TOL  # the project's one gradient-check tolerance


class SeededDropout(Dropout):
    """Dropout whose mask is the same on every forward call, so finite differences see one function."""

    def forward(self, x):
        self.rng = np.random.default_rng(7)
        return super().forward(x)


@pytest.mark.parametrize("make", [
    lambda: Linear(5, 4, rng=1, dtype=np.float64),
    lambda: Linear(3, 7, init="glorot", rng=2, dtype=np.float64),
    ReLU, LeakyReLU, lambda: LeakyReLU(0.2), Sigmoid, Tanh,
    lambda: SeededDropout(0.4),
], ids=["linear", "linear-glorot", "relu", "leaky-relu", "leaky-relu-0.2", "sigmoid", "tanh",
        "dropout"])
def test_layer_gradients(make):
    layer = make()
    x = np.random.default_rng(0).standard_normal((3, layer.in_features if hasattr(layer, "in_features") else 5))
    if layer.params:  # non-zero biases, so a backward that ignores them cannot pass
        layer.params["b"][:] = np.random.default_rng(3).standard_normal(layer.params["b"].shape)
    errors = gradcheck_layer(layer, x, rng=4)
    assert max(errors.values()) < TOL, errors
    assert set(layer.grads) == set(layer.params)


def test_elementwise_layers_take_any_shape():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    for layer in (ReLU(), LeakyReLU(), Sigmoid(), Tanh(), SeededDropout(0.3)):
        assert max(gradcheck_layer(layer, x, rng=1).values()) < TOL, layer


def test_softmax_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    logits, y = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6)
    assert gradcheck_loss(SoftmaxCrossEntropy(), logits, y) < TOL


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
        errors = gradcheck_layer(model, x, rng=2)
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


@pytest.mark.parametrize("p", [0.2, 0.5, 0.999999, 1e-9])
@pytest.mark.parametrize("shape, earlier", [((128, 512), 0), ((128, 512), 3), ((7, 5), 0), ((3, 2, 4, 4), 1)],
                         ids=["batch", "after-odd-draw", "odd-size", "images-after-draw"])
def test_dropout_keeps_the_units_generator_random_keeps(p, shape, earlier):
    """The fast draw of the keep mask (raw words compared with an integer threshold) gives the very
    booleans of rng.random(shape, dtype=float32) >= p, and leaves the generator where it leaves it;
    where it cannot (an odd count, a word left over from an earlier float32 draw) it falls back."""
    fast, slow = np.random.default_rng(7), np.random.default_rng(7)
    fast.random(earlier, dtype=np.float32), slow.random(earlier, dtype=np.float32)
    for _ in range(3):
        np.testing.assert_array_equal(uniform_at_least(fast, shape, p),
                                      slow.random(shape, dtype=np.float32) >= np.float32(p))
    assert fast.random(5, dtype=np.float32).tolist() == slow.random(5, dtype=np.float32).tolist()
    x = np.ones(shape, np.float32)
    np.testing.assert_array_equal(Dropout(p, rng=np.random.default_rng(3)).forward(x),
                                  x * ((np.random.default_rng(3).random(shape, dtype=np.float32) >= np.float32(p))
                                       / np.float32(1 - p)))


def test_dropout_with_another_bit_generator_draws_as_before():
    keep = uniform_at_least(np.random.Generator(np.random.MT19937(3)), (64, 10), 0.3)
    reference = np.random.Generator(np.random.MT19937(3)).random((64, 10), dtype=np.float32) >= np.float32(0.3)
    np.testing.assert_array_equal(keep, reference)


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
    rebuilt = from_config(model.config())
    assert rebuilt.config() == model.config()
    assert "Linear(in_features=4, out_features=8" in repr(model)
    assert set(LAYERS) >= {"Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Dropout"}


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
    (lambda: from_config([{"type": "Exec"}]), "unknown layer type 'Exec'"),
])
def test_bad_input_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# One factory per layer type: LAYERS must not grow without its layer being checked here.
LAYER_CASES = {
    "Linear": (lambda: Linear(5, 4, rng=1, dtype=np.float64), (3, 5)),
    "ReLU": (ReLU, (3, 5)),
    "LeakyReLU": (lambda: LeakyReLU(0.2), (3, 5)),
    "Sigmoid": (Sigmoid, (3, 5)),
    "Tanh": (Tanh, (3, 5)),
    "Dropout": (lambda: SeededDropout(0.4), (3, 5)),
    "Conv2D": (lambda: Conv2D(2, 3, 3, stride=2, padding=1, rng=1, dtype=np.float64), (2, 2, 6, 5)),
    "MaxPool2D": (lambda: MaxPool2D(2), (2, 3, 4, 6)),
    "Flatten": (Flatten, (2, 3, 4)),
}


def test_every_registered_layer_has_a_gradient_rule_case():
    assert set(LAYER_CASES) == set(LAYERS)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_backward_writes_into_the_existing_grads_arrays(name):
    """The gradient rule: a reference to grads, taken once, holds the latest gradient after every backward."""
    make, shape = LAYER_CASES[name]
    layer, twin = make(), make()
    grads, arrays = layer.grads, dict(layer.grads)
    rng = np.random.default_rng(0)
    for _ in range(2):  # two passes with different inputs and output gradients
        x = rng.standard_normal(shape)
        dout = rng.standard_normal(layer.forward(x).shape)
        layer.backward(dout)
        twin.forward(x)
        twin.backward(dout)
    assert layer.grads is grads and all(layer.grads[k] is arrays[k] for k in arrays)
    for k in layer.params:
        np.testing.assert_array_equal(arrays[k], twin.grads[k])
    model = Sequential([make()])
    model_grads = model.grads
    for _ in range(2):
        x = rng.standard_normal(shape)
        model.backward(rng.standard_normal(model.forward(x).shape))
    assert all(model_grads[k] is v for k, v in model.grads.items())


@pytest.mark.parametrize("make", [ReLU, lambda: LeakyReLU(0.1), Sigmoid, Tanh])
def test_activation_backward_is_dout_times_local_grad(make):
    layer = make()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    layer.forward(x)
    dout = rng.standard_normal((4, 6)).astype(np.float32)
    dx = layer.backward(dout)
    np.testing.assert_array_equal(dx, dout * layer.local_grad())
    assert dx.dtype == np.float32
    h = 1e-3  # the local gradient is the derivative: compare with central differences in float64
    x64 = x.astype(np.float64)
    numeric = (make().forward(x64 + h) - make().forward(x64 - h)) / (2 * h)
    layer.forward(x64)
    np.testing.assert_allclose(layer.local_grad(), numeric, atol=1e-5)
    assert float(np.max(layer.local_grad())) <= layer.max_slope


def test_linear_bias_gradient_is_the_column_sum():
    layer = Linear(4, 3, rng=0, dtype=np.float64)
    x, dout = np.random.default_rng(1).standard_normal((5, 4)), np.random.default_rng(2).standard_normal((5, 3))
    layer.forward(x)
    layer.backward(dout)
    np.testing.assert_allclose(layer.grads["b"], dout.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(layer.grads["W"], x.T @ dout, rtol=1e-14)


def test_evaluating_restores_the_mode_even_after_an_error():
    model = mlp([4, 3, 2], dropout=0.5, rng=0)
    with evaluating(model):
        assert not model.training and not model.layers[2].training
    assert model.training and model.layers[2].training
    with pytest.raises(RuntimeError), evaluating(model):
        raise RuntimeError
    assert model.training
    model.eval()
    with evaluating(model):
        pass
    assert not model.training  # a model in eval mode stays in eval mode


def test_summary_counts_parameters_and_multiply_adds():
    model = mlp([784, 512, 256, 10], dropout=0.2, rng=0)
    rows = summary(model, 784)
    assert [r["output_shape"] for r in rows] == [(512,), (512,), (512,), (256,), (256,), (256,), (10,)]
    assert sum(r["params"] for r in rows) == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    assert sum(r["mult_adds"] for r in rows) == 784 * 512 + 512 * 256 + 256 * 10
    assert "total" in repr(rows) and "535,818" in str(rows)
    lenet = lenet5(rng=0)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    lenet.forward(x)
    cached = [layer.out for layer in lenet.layers]
    rng_state = lenet.layers[0].params["W"].copy()
    rows = summary(lenet, (1, 28, 28))
    assert sum(r["params"] for r in rows) == 61706
    assert rows[0]["output_shape"] == (6, 28, 28) and rows[0]["mult_adds"] == 6 * 25 * 28 * 28
    assert rows[3]["mult_adds"] == 16 * 6 * 25 * 10 * 10
    assert all(layer.out is out for layer, out in zip(lenet.layers, cached))  # the plots' cached state is kept
    np.testing.assert_array_equal(lenet.layers[0].params["W"], rng_state)
    with pytest.raises(ValueError, match=r"Conv2D.*\(N, C, H, W\)"):
        summary(lenet, 784)


def test_summary_draws_no_random_numbers():
    a, b = mlp([6, 5, 3], dropout=0.5, rng=0), mlp([6, 5, 3], dropout=0.5, rng=0)
    summary(a, 6)
    x = np.ones((4, 6), np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))  # the Dropout generators are in step


def test_param_shapes_match_the_built_model():
    for model in (mlp([7, 5, 3], "tanh", dropout=0.1, rng=0), lenet5(in_channels=3, image_size=32, rng=0)):
        shapes = param_shapes(model.config())
        assert shapes == {k: v.shape for k, v in model.params.items()}


BAD_ARGUMENTS = [
    (lambda: mlp([784, 2.7, 10]), r"mlp: sizes\[1\] must be an integer >= 1, got 2.7"),
    (lambda: mlp([784, "8", 10]), r"sizes\[1\] must be an integer >= 1, got '8'"),
    (lambda: mlp([784, True, 10]), r"sizes\[1\] must be an integer >= 1, got True"),
    (lambda: mlp([784, 0, 10]), r"sizes\[1\] must be an integer >= 1, got 0"),
    (lambda: mlp("784"), "sizes must be a list of integers"),
    (lambda: mlp([784, 10], dropout=-0.1), r"mlp: dropout must be in \[0, 1\).*-0.1"),
    (lambda: mlp([784, 10], dropout=float("nan")), r"dropout must be in \[0, 1\).*nan"),
    (lambda: mlp([784, 10], dropout="0.2"), r"dropout must be in \[0, 1\).*'0.2'"),
    (lambda: mlp([784, 10], activation=["relu"]), "unknown activation"),
    (lambda: mlp([784, 10], rng=1.5), "mlp: rng must be a numpy Generator, None or an integer seed >= 0, got 1.5"),
    (lambda: mlp([784, 10], rng=-1), "rng must be .* got -1"),
    (lambda: mlp([784, 10], dtype=np.int32), "dtype must be float32 or float64"),
    (lambda: mlp([784, 10], dtype="float16"), "dtype must be float32 or float64, got 'float16'"),
    (lambda: lenet5(in_channels=0), "lenet5: in_channels must be an integer >= 1, got 0"),
    (lambda: lenet5(image_size=28.0), "lenet5: image_size must be an integer >= 1, got 28.0"),
    (lambda: lenet5(num_classes=True), "num_classes must be an integer >= 1, got True"),
    (lambda: lenet5(dropout=1.0), r"lenet5: dropout must be in \[0, 1\)"),
    (lambda: Linear(4.0, 3), "Linear: in_features must be an integer >= 1, got 4.0"),
    (lambda: Linear(4, -3), "Linear: out_features must be an integer >= 1, got -3"),
    (lambda: Linear(4, 3, init=None), "Linear: init must be 'he' or 'glorot', got None"),
    (lambda: LeakyReLU(float("inf")), r"LeakyReLU: alpha must be in \[0, 1\).*inf"),
    (lambda: Dropout("0.5"), r"Dropout: p must be in \[0, 1\).*'0.5'"),
    (lambda: Dropout(0.5, rng="seed"), "Dropout: rng must be"),
    (lambda: Conv2D(1, 6, 5, padding=True), "Conv2D: padding must be an integer >= 0, got True"),
    (lambda: MaxPool2D(2, stride=1.5), "MaxPool2D: stride must be an integer >= 1, got 1.5"),
    (lambda: from_config({"type": "Linear"}), "expected a list of layer dicts, got dict"),
    (lambda: from_config(["Linear"]), "layer 0: expected a dict with a 'type' key, got str"),
    (lambda: from_config([{"type": ["Linear"]}]), r"unknown layer type \['Linear'\]"),
    (lambda: from_config([{"type": "ReLU", "inplace": True}]), r"layer 0 \(ReLU\): unknown arguments \['inplace'\]"),
    (lambda: from_config([{"type": "Linear", "in_features": 3}]), r"layer 0 \(Linear\): bad arguments"),
    (lambda: from_config([{"type": "Linear", "in_features": "3", "out_features": 2}]),
     "in_features must be an integer >= 1, got '3'"),
    (lambda: summary(mlp([4, 3]), (1, 0)), "summary: input_shape must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize("call, message", BAD_ARGUMENTS, ids=[m[:40] for _, m in BAD_ARGUMENTS])
def test_bad_arguments_name_the_parameter_and_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()
