"""Conv2D, MaxPool2D, Flatten and LeNet-5: gradients, reference results, the tie rule, checkpoints, training."""
import tracemalloc

import numpy as np
import pytest

from module import Conv2D, Flatten, Linear, MaxPool2D, ReLU
from utils.core.checkpoint import load_model, save_model
from utils.core.models import EVAL_BATCH_SIZE, INFERENCE_BYTES, LAYERS, Sequential, inference_batch_size, lenet5
from utils.core.train import evaluate, train
from utils.teaching.gradcheck import GRADCHECK_TOL, gradcheck_layer

TOL = GRADCHECK_TOL  # the project's one gradient-check tolerance


def conv_reference(x, W, b, stride, padding):
    """Convolution by its definition, one output pixel at a time."""
    n, c, h, w = x.shape
    f, _, k, _ = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    out = np.empty((n, f, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.tensordot(patch, W, axes=([1, 2, 3], [1, 2, 3])) + b
    return out


def pool_reference(x, dout, k, stride):
    """Max pooling and its gradient by definition: each window sends dout to its first maximum."""
    n, c, h, w = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    out, dx = np.empty((n, c, ho, wo)), np.zeros_like(x)
    for a, b, i, j in np.ndindex(n, c, ho, wo):
        window = x[a, b, i * stride:i * stride + k, j * stride:j * stride + k]
        r, s = np.unravel_index(np.argmax(window), window.shape)  # argmax: first occurrence
        out[a, b, i, j] = window[r, s]
        dx[a, b, i * stride + r, j * stride + s] += dout[a, b, i, j]
    return out, dx


def random_conv(*args, seed=1, **kwargs):
    layer = Conv2D(*args, rng=seed, dtype=np.float64, **kwargs)
    layer.params["b"][:] = np.random.default_rng(seed + 1).standard_normal(layer.params["b"].shape)
    return layer


CONV_CASES = [  # (in, out, k, stride, padding), input shape
    ((3, 4, 3, 1, 0), (2, 3, 5, 7)),    # non-square image
    ((2, 3, 3, 2, 1), (1, 2, 7, 6)),    # stride 2, padding 1, batch 1
    ((1, 2, 5, 1, 2), (2, 1, 6, 5)),    # LeNet's first layer, small
    ((2, 2, 2, 3, 1), (2, 2, 8, 7)),    # stride larger than the kernel: some pixels are skipped
    ((2, 3, 1, 1, 0), (3, 2, 4, 3)),    # 1x1 kernel
]


@pytest.mark.parametrize("args, shape", CONV_CASES, ids=[str(a) for a, _ in CONV_CASES])
def test_conv_gradients(args, shape):
    layer = random_conv(*args)
    x = np.random.default_rng(0).standard_normal(shape)
    errors = gradcheck_layer(layer, x, rng=2)
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("args, shape", CONV_CASES, ids=[str(a) for a, _ in CONV_CASES])
def test_conv_matches_definition(args, shape):
    layer = random_conv(*args)
    x = np.random.default_rng(0).standard_normal(shape)
    expected = conv_reference(x, layer.params["W"], layer.params["b"], args[3], args[4])
    assert layer.forward(x).shape == expected.shape
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-10, atol=1e-12)


POOL_CASES = [  # (kernel, stride), input shape
    ((2, None), (2, 3, 6, 8)),
    ((3, 2), (1, 2, 7, 6)),     # overlapping windows, batch 1
    ((2, 1), (2, 2, 5, 6)),     # stride 1: each pixel in up to four windows
    ((3, None), (2, 1, 7, 8)),  # sizes that do not divide: the last rows/columns are dropped
    ((1, 2), (2, 2, 5, 6)),     # 1 x 1 windows: no match is played
    ((2, 3), (2, 2, 8, 9)),     # stride larger than the window: some pixels in no window
    ((4, None), (1, 2, 8, 8)),  # 16 window positions: four rounds of the tournament
]


@pytest.mark.parametrize("args, shape", POOL_CASES, ids=[str(a) for a, _ in POOL_CASES])
def test_pool_gradients_and_definition(args, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    layer = MaxPool2D(*args)
    assert max(gradcheck_layer(layer, x, rng=3).values()) < TOL
    k, stride = args[0], args[1] or args[0]
    dout = rng.standard_normal(layer.forward(x).shape)
    out, dx = pool_reference(x, dout, k, stride)
    np.testing.assert_array_equal(layer.forward(x), out)
    np.testing.assert_allclose(layer.backward(dout), dx, rtol=1e-12, atol=1e-15)  # sums in another order


@pytest.mark.parametrize("args", [(2, None), (3, 2), (2, 1), (3, None), (4, None)])
def test_pool_ties_send_the_gradient_to_one_position(args):
    # Few distinct values: most windows hold ties, as a flat image background does.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (2, 3, 8, 9)).astype(np.float64)
    layer = MaxPool2D(*args)
    dout = rng.standard_normal(layer.forward(x).shape)
    _, expected = pool_reference(x, dout, args[0], args[1] or args[0])
    np.testing.assert_allclose(layer.backward(dout), expected, rtol=1e-12, atol=1e-15)


def test_pool_tie_goes_to_the_first_maximum():
    layer = MaxPool2D(2)
    flat = np.ones((1, 1, 4, 4))
    layer.forward(flat)
    dx = layer.backward(np.full((1, 1, 2, 2), 5.0))
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 5.0  # top-left of each window; never 5/4 spread over the four
    np.testing.assert_array_equal(dx[0, 0], expected)
    x = np.array([[[[0.0, 3.0], [3.0, 3.0]]]])
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones((1, 1, 1, 1)))[0, 0], [[0, 1], [0, 0]])


def test_flatten_and_a_small_conv_net_gradient():
    rng = np.random.default_rng(0)
    assert max(gradcheck_layer(Flatten(), rng.standard_normal((2, 3, 4, 5)), rng=1).values()) < TOL
    # The layers pass each other views in various memory orders; the chain must still be exact.
    net = Sequential([random_conv(2, 3, 3, padding=1), ReLU(), MaxPool2D(2), random_conv(3, 2, 2, seed=5),
                      Flatten(), Linear(2 * 2 * 3, 4, rng=2, dtype=np.float64)])
    errors = gradcheck_layer(net, rng.standard_normal((2, 2, 7, 8)), rng=4)
    assert max(errors.values()) < TOL, errors


def test_contract_need_dx_config_and_registry():
    rng = np.random.default_rng(0)
    layer = random_conv(2, 3, 3, stride=2, padding=1)
    x = rng.standard_normal((2, 2, 6, 5))
    dout = rng.standard_normal(layer.forward(x).shape)
    dx = layer.backward(dout)
    dW = layer.grads["W"].copy()
    layer.forward(x)
    assert layer.backward(dout, need_dx=False) is None
    np.testing.assert_array_equal(layer.grads["W"], dW)  # the weight gradients do not depend on need_dx
    assert dx.shape == x.shape
    for made in (layer, MaxPool2D(3, 2), Flatten()):
        name = type(made).__name__
        assert LAYERS[name] is type(made)
        assert LAYERS[name](**made.config()).config() == made.config()
    assert Conv2D(1, 1, 3, rng=0).config() == {"in_channels": 1, "out_channels": 1, "kernel_size": 3,
                                                "stride": 1, "padding": 0}
    assert MaxPool2D(2).config() == {"kernel_size": 2, "stride": 2}


def test_conv_init_and_dtype():
    layer = Conv2D(16, 32, 3, rng=0)
    W = layer.params["W"]
    assert W.shape == (32, 16, 3, 3) and W.dtype == np.float32 and layer.params["b"].dtype == np.float32
    assert abs(W.std() - np.sqrt(2 / (16 * 9))) < 0.05 * np.sqrt(2 / (16 * 9))  # He: std sqrt(2 / fan_in)
    model = lenet5(rng=0)
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    assert model.forward(x).dtype == np.float32
    model.backward(np.ones((3, 10), np.float32))
    assert all(g.dtype == np.float32 for g in model.grads.values())


def test_lenet_shapes_and_parameter_count():
    model = lenet5(rng=0)
    model.forward(np.zeros((2, 1, 28, 28), np.float32))
    shapes = [layer.out.shape for layer in model.layers]
    assert shapes == [(2, 6, 28, 28), (2, 6, 28, 28), (2, 6, 14, 14), (2, 16, 10, 10), (2, 16, 10, 10),
                      (2, 16, 5, 5), (2, 400), (2, 120), (2, 120), (2, 84), (2, 84), (2, 10)]
    # LeCun's count: (25+1)*6 + (150+1)*16 + (400+1)*120 + (120+1)*84 + (84+1)*10.
    assert sum(p.size for p in model.params.values()) == 61706
    cifar = lenet5(in_channels=3, image_size=32, rng=0)
    cifar.forward(np.zeros((2, 3, 32, 32), np.float32))
    assert [layer.out.shape for layer in cifar.layers][:7] == shapes[:7]
    assert cifar.out.shape == (2, 10)
    assert lenet5(image_size=20, num_classes=5, rng=0).forward(np.zeros((1, 1, 20, 20))).shape == (1, 5)
    with pytest.raises(ValueError, match="image_size 12"):
        lenet5(image_size=12)
    dropped = lenet5(dropout=0.5, rng=0)
    assert [type(layer).__name__ for layer in dropped.layers[7:]] == [
        "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]


def test_lenet_checkpoint_round_trip(tmp_path):
    model = lenet5(in_channels=3, image_size=32, rng=0)
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    save_model(model, tmp_path / "lenet.npz", note="round trip")
    loaded, meta = load_model(tmp_path / "lenet.npz")
    assert meta["note"] == "round trip"
    assert loaded.config() == model.config()
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def test_lenet_inference_memory_is_bounded_by_the_chunk_not_the_data_set():
    """predict and evaluate work in chunks: 2,000 images in chunks of 200 need about two chunks'
    im2col matrices (the last one's is freed while the next is built), 57 MB, not the whole
    set's (2,000 x 784 x 25 float32 = 157 MB in the first conv alone; 406 MB in all)."""
    model = lenet5(rng=0)
    x, y = np.zeros((2000, 1, 28, 28), dtype=np.float32), np.zeros(2000, dtype=np.int64)
    for infer in (lambda: model.predict(x, batch_size=200), lambda: evaluate(model, x, y, batch_size=200)):
        tracemalloc.start()
        try:
            infer()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 100e6, f"peak {peak / 1e6:.0f} MB for chunks of 200 images"


def test_inference_chunks_bound_the_im2col_matrix_not_the_mlp():
    assert inference_batch_size(lenet5(rng=0), (1, 28, 28)) == INFERENCE_BYTES // (25 * 28 * 28 * 4)  # 213
    assert inference_batch_size(lenet5(in_channels=3, image_size=32, rng=0), (3, 32, 32)) == \
        INFERENCE_BYTES // (75 * 28 * 28 * 4)
    assert inference_batch_size(lenet5(rng=0), (1, 28, 28), itemsize=8) == INFERENCE_BYTES // (25 * 28 * 28 * 8)
    assert inference_batch_size(Sequential([Linear(784, 10, rng=0)]), (784,)) == EVAL_BATCH_SIZE


def test_evaluate_and_predict_use_the_model_s_chunks():
    model, rng = lenet5(rng=0), np.random.default_rng(0)
    x, y = rng.standard_normal((500, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 500)
    assert evaluate(model, x, y) == evaluate(model, x, y, batch_size=213)
    np.testing.assert_array_equal(model.predict_proba(x), model.predict_proba(x, batch_size=213))
    # Another chunk size moves only the last bits (the matrix products are blocked differently).
    np.testing.assert_allclose(model.predict_proba(x), model.predict_proba(x, batch_size=500), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make, x, message", [
    (lambda: Conv2D(3, 4, 3, rng=0), np.zeros((2, 1, 8, 8)), r"Conv2D\(in_channels=3.*3 channels.*\(2, 1, 8, 8\)"),
    (lambda: Conv2D(1, 4, 5, rng=0), np.zeros((2, 1, 4, 9)), r"Conv2D.*4x9 is smaller than the 5x5 kernel"),
    (lambda: Conv2D(1, 4, 5, padding=1, rng=0), np.zeros((2, 1, 2, 9)), r"2x9 padded by 1.*\(2, 1, 2, 9\)"),
    (lambda: Conv2D(1, 4, 3, rng=0), np.zeros((1, 8, 8)), r"Conv2D.*\(N, C, H, W\).*\(1, 8, 8\)"),
    (lambda: MaxPool2D(3), np.zeros((1, 2, 2, 5)), r"MaxPool2D\(kernel_size=3.*2x5 is smaller than the 3x3"),
    (lambda: MaxPool2D(2), np.zeros((4, 4)), r"MaxPool2D.*\(N, C, H, W\).*\(4, 4\)"),
    (Flatten, np.zeros(5), r"Flatten.*\(5,\)"),
])
def test_bad_inputs_name_the_layer_and_shapes(make, x, message):
    with pytest.raises(ValueError, match=message):
        make().forward(x)


@pytest.mark.parametrize("make, message", [
    (lambda: Conv2D(1, 4, 0), "kernel_size must be an integer >= 1, got 0"),
    (lambda: Conv2D(1, 4, 3, stride=0), "stride must be an integer >= 1, got 0"),
    (lambda: Conv2D(0, 4, 3), "in_channels must be"),
    (lambda: Conv2D(1, 4, 3, padding=-1), "padding must be an integer >= 0"),
    (lambda: Conv2D(1, 4, 2.5), "kernel_size must be an integer"),
    (lambda: MaxPool2D(0), "MaxPool2D: kernel_size must be an integer >= 1, got 0"),
    (lambda: MaxPool2D(2, stride=0), "MaxPool2D: stride must be an integer >= 1, got 0"),
])
def test_bad_settings(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.fixture(scope="module")
def small_fashion_images(fashion_raw):
    """3,000 training and 1,000 validation images of the real Fashion-MNIST as (N, 1, 28, 28)."""
    X, y = fashion_raw
    X = (X[:4000, None].astype(np.float32) / np.float32(255) - np.float32(0.29)) / np.float32(0.35)
    return X[:3000], y[:3000], X[3000:], y[3000:4000]


def test_lenet_learns_fashion_mnist(small_fashion_images, tmp_path):
    model = lenet5(rng=0)
    history = train(model, *small_fashion_images, num_epochs=3, optimizer="adam", lr=2e-3, batch_size=64,
                    progress=False, checkpoint_path=tmp_path / "lenet.npz")
    assert history.val_acc.max() > 0.75  # chance is 0.10
    assert history.train_loss.iloc[-1] < history.train_loss.iloc[0]
    loaded, _ = load_model(tmp_path / "lenet.npz")
    assert evaluate(loaded, *small_fashion_images[2:])[1] == history.val_acc.max()


def test_lenet_grads_references_stay_valid_across_steps():
    """The gradient rule for a whole conv net: grads taken once hold the gradient of the latest batch."""
    model, twin = lenet5(rng=0), lenet5(rng=0)
    grads = model.grads
    rng = np.random.default_rng(1)
    for _ in range(2):
        x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
        dout = rng.standard_normal((3, 10)).astype(np.float32)
        for m in (model, twin):
            m.forward(x)
            m.backward(dout)
    for name, g in grads.items():
        assert g is model.grads[name]
        np.testing.assert_array_equal(g, twin.grads[name])
