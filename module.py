"""Layers of a neural network, each with its forward and backward pass written by hand.

Every layer keeps one contract, which the optimisers, the checkpoints, the plots and the
tests rely on:

* ``forward(x)`` returns the output and keeps what ``backward`` needs, plus the last
  output in ``self.out`` so that the notebooks can draw activations;
* ``backward(dout)`` returns the gradient with respect to the input and writes the weight
  gradients INTO the existing arrays ``self.grads[k]``, one for every ``k`` in ``self.params``.
  It never replaces those arrays and never changes a weight, so a reference to
  ``model.grads`` (or to one of its arrays) stays valid and holds the latest gradient;
* ``params`` and ``grads`` are dicts with the same keys (``{}`` for layers without
  weights); ``train()`` and ``eval()`` switch modes (only ``Dropout`` cares);
* ``config()`` returns the constructor arguments, so a checkpoint can rebuild the layer.

An activation's derivative is written once, in ``local_grad()`` beside its forward: its
backward multiplies ``dout`` by it, and the diagnostics read it. A model is a ``Sequential``.
The loss, ``SoftmaxCrossEntropy``, sits outside the model: training needs it, inference does
not. Arrays keep the dtype they come in with: float32 for training, float64 for gradient checks.
Bad arguments raise a ValueError that names the parameter, the value and what is expected.
"""
import contextlib
import inspect
import numbers

import numpy as np

# Inference runs in chunks of this many images. LeNet-5's first im2col matrix holds 25 values
# per pixel: 80 MB for 1,024 Fashion-MNIST images, 780 MB for the whole test set.
EVAL_BATCH_SIZE = 1024


def _as_rng(rng, who):
    """A Generator from a Generator, None or a seed; never NumPy's global random state."""
    if isinstance(rng, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)) or rng is None or (
            isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0):
        return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    raise ValueError(f"{who}: rng must be a numpy Generator, None or an integer seed >= 0, got {rng!r}")


def _int_arg(who, name, value, minimum=1):
    """value as an int, or a ValueError naming who, the parameter, the value and what is expected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{who}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _fraction_arg(who, name, value):
    """value as a float in [0, 1) (NaN and inf fail the comparison), or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{who}: {name} must be in [0, 1) (a real number), got {value!r}")
    return float(value)


def _float_dtype(who, dtype):
    """np.dtype(dtype) if it is float32 or float64, else a ValueError naming who."""
    with contextlib.suppress(TypeError):
        if dtype is not None and np.dtype(dtype) in (np.float32, np.float64):
            return np.dtype(dtype)
    raise ValueError(f"{who}: dtype must be float32 or float64, got {dtype!r}")


def _check_input(layer, x, ndim, features=None):
    """Raise a ValueError naming the layer when x has the wrong rank or feature count."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{layer!r}: expected a NumPy array, got {type(x).__name__}")
    if x.ndim != ndim or (features is not None and x.shape[-1] != features):
        want = "(N, " + ("..." if features is None else str(features)) + ")" if ndim == 2 else f"{ndim}-D"
        raise ValueError(f"{layer!r}: expected input of shape {want}, got shape {x.shape}")


def check_finite(x, who):
    """Raise a ValueError naming who when the array x holds NaN or inf."""
    if not np.isfinite(x).all():
        raise ValueError(f"{who}: the input of shape {x.shape} contains NaN or inf")


def column_sum(a, out):
    """a.sum(axis=0) for a of shape (N, D), written into out (D,).

    Computed as the product ones @ a, which BLAS runs 2-3x faster than np.sum (the last
    bits can differ from a.sum(axis=0): the additions happen in another order).
    """
    return np.matmul(np.ones(len(a), a.dtype), a, out=out)


@contextlib.contextmanager
def evaluating(model):
    """with evaluating(model): ... runs the block in eval mode, then restores the previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


class Layer:
    """The base of every layer: no parameters, the same in train and eval mode."""

    def __init__(self):
        self.params, self.grads = {}, {}
        self.training = True
        self.out = None

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout, need_dx=True):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def train(self):
        self.training = True
        return self

    def eval(self):
        self.training = False
        return self

    def config(self):
        return {}

    @staticmethod
    def param_shapes(**config):
        """{name: shape} of the parameters a layer built from config has, without allocating them."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Linear(Layer):
    """Fully connected layer: out = x @ W + b.

    x: (N, in_features) -> out: (N, out_features); W: (in_features, out_features), b: (out_features,).
    init: "he" (std sqrt(2 / in), for the ReLU family) or "glorot" (std sqrt(2 / (in + out)),
    for sigmoid and tanh).
    """

    def __init__(self, in_features, out_features, init="he", rng=None, dtype=np.float32):
        super().__init__()
        shapes = self.param_shapes(in_features, out_features)
        if not isinstance(init, str) or init not in ("he", "glorot"):
            raise ValueError(f"Linear: init must be 'he' or 'glorot', got {init!r}")
        rng, dtype = _as_rng(rng, "Linear"), _float_dtype("Linear", dtype)
        (self.in_features, self.out_features), self.init = shapes["W"], init
        fan = self.in_features if init == "he" else self.in_features + self.out_features
        W = rng.standard_normal(shapes["W"]) * np.sqrt(2.0 / fan)
        self.params = {"W": W.astype(dtype), "b": np.zeros(shapes["b"], dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    @staticmethod
    def param_shapes(in_features, out_features, **_):
        n_in, n_out = _int_arg("Linear", "in_features", in_features), _int_arg("Linear", "out_features", out_features)
        return {"W": (n_in, n_out), "b": (n_out,)}

    def forward(self, x):
        _check_input(self, x, 2, self.in_features)
        self.x = x
        self.out = x @ self.params["W"]
        self.out += self.params["b"]  # in place: no second (N, out) temporary
        return self.out

    def backward(self, dout, need_dx=True):
        # dW = x.T @ dout,  db = dout.sum(axis=0),  dX = dout @ W.T
        np.matmul(self.x.T, dout, out=self.grads["W"])
        column_sum(dout, out=self.grads["b"])
        # The first layer's dX feeds nothing: skipping it saves a quarter of the training FLOPs.
        return dout @ self.params["W"].T if need_dx else None

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "init": self.init}


class Activation(Layer):
    """An elementwise activation, any shape: backward is dout * local_grad()."""

    max_slope = 1.0  # the largest value local_grad() takes; the diagnostics divide by it

    def local_grad(self):
        """d out / d x at the last input, shaped like self.out."""
        raise NotImplementedError

    def backward(self, dout, need_dx=True):
        return dout * self.local_grad()


class ReLU(Activation):
    """out = max(x, 0)."""

    def forward(self, x):
        self.out = np.maximum(x, 0)
        return self.out

    def local_grad(self):
        return self.out > 0  # booleans: dout * bool is as exact as dout * 1.0, and cheaper


class LeakyReLU(Activation):
    """out = x where x > 0, alpha * x elsewhere."""

    def __init__(self, alpha=0.01):
        super().__init__()
        self.alpha = _fraction_arg("LeakyReLU", "alpha", alpha)

    def forward(self, x):
        self.x = x
        self.out = np.where(x > 0, x, self.alpha * x)
        return self.out

    def local_grad(self):
        one, alpha = np.array([1, self.alpha], self.out.dtype)  # float32 stays float32
        return np.where(self.x > 0, one, alpha)

    def config(self):
        return {"alpha": self.alpha}


class Sigmoid(Activation):
    """out = 1 / (1 + exp(-x))."""

    max_slope = 0.25

    def forward(self, x):
        # The tanh form never overflows, unlike exp(-x) for very negative x.
        self.out = 0.5 * (1 + np.tanh(0.5 * x))
        return self.out

    def local_grad(self):
        return self.out * (1 - self.out)


class Tanh(Activation):
    """out = tanh(x)."""

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def local_grad(self):
        return 1 - self.out ** 2


def softmax(z):
    """Row-wise softmax of z: (N, C) -> (N, C), shifted by the row maximum so exp never overflows."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class Softmax(Layer):
    """Class probabilities as a layer, for inference models and plots: (N, C) -> (N, C).

    e.g. Sequential([*model.layers, Softmax()]). Training uses SoftmaxCrossEntropy instead,
    whose fused gradient is simpler and stabler.
    """

    def forward(self, x):
        _check_input(self, x, 2)
        self.out = softmax(x)
        return self.out

    def backward(self, dout, need_dx=True):
        # The Jacobian-vector product of softmax, without building the (C, C) Jacobian.
        return self.out * (dout - (dout * self.out).sum(axis=1, keepdims=True))


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability p and scale the rest by 1/(1-p).

    In eval mode it is the identity, so nothing changes at test time. Any shape.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p, self.rng = _fraction_arg("Dropout", "p", p), _as_rng(rng, "Dropout")

    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            self.out = x
        else:
            keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
            self.mask = keep / x.dtype.type(1 - self.p)  # bool / float32 scalar: a float32 mask, one pass
            self.out = x * self.mask
        return self.out

    def backward(self, dout, need_dx=True):
        return dout if self.mask is None else dout * self.mask

    def config(self):
        return {"p": self.p}


class SoftmaxCrossEntropy:
    """Softmax and cross-entropy fused into one loss: the mean over the batch of -log p[y].

    forward(logits, y): logits (N, C), y (N,) integer labels in [0, C) -> loss, a float.
    backward() -> dlogits (N, C) = (p - onehot(y)) / N.
    """

    def forward(self, logits, y):
        _check_input(self, logits, 2)
        y = np.asarray(y)
        n, c = logits.shape
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{self!r}: expected integer labels of shape ({n},), got {y.dtype} {y.shape}")
        if n and (y.min() < 0 or y.max() >= c):
            raise ValueError(f"{self!r}: labels must lie in [0, {c}), got values from {y.min()} to {y.max()}")
        shifted = logits - logits.max(axis=1, keepdims=True)  # exp never overflows
        exp = np.exp(shifted)
        total = exp.sum(axis=1)
        exp /= total[:, None]
        self.p, self.y = exp, y
        # log p[y] = shifted[y] - log(sum(exp)): the log-sum-exp trick, never log(0).
        return float(np.log(total).sum() - shifted[np.arange(n), y].sum()) / n

    def backward(self):
        n = len(self.y)
        dlogits = self.p / n
        dlogits[np.arange(n), self.y] -= 1 / n
        return dlogits

    def __repr__(self):
        return "SoftmaxCrossEntropy()"


class Summary(list):
    """The rows of Sequential.summary() (dicts: layer, output_shape, params, mult_adds), shown as a table."""

    def __repr__(self):
        def line(name, shape, params, mult_adds):
            return f"{name:<16}{shape:>18}{params:>13}{mult_adds:>15}"
        return "\n".join([line("layer", "output shape", "parameters", "mult-adds")]
                         + [line(r["layer"], str(r["output_shape"]), f"{r['params']:,}", f"{r['mult_adds']:,}")
                            for r in self]
                         + [line("total", "", f"{sum(r['params'] for r in self):,}",
                                 f"{sum(r['mult_adds'] for r in self):,}")])

    __str__ = __repr__


class Sequential(Layer):
    """An ordered list of layers: forward walks it, backward walks it in reverse.

    params and grads are flat dicts keyed "index.name" (e.g. "0.W"), holding the very
    arrays of the layers, so an optimiser that updates them in place updates the model.
    """

    def __init__(self, layers):
        # No Layer.__init__: params and grads are views of the layers' dicts, not dicts of their own.
        self.training, self.out = True, None
        layers = list(layers)
        if not layers:
            raise ValueError("Sequential: the layer list is empty; give at least one layer")
        for layer in layers:
            if not isinstance(layer, Layer):
                raise ValueError(f"Sequential: expected layer objects, got {type(layer).__name__}")
        self.layers = layers

    @property
    def params(self):
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    @property
    def grads(self):
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    def parameters(self):
        """Yield (layer, name, param, grad) for every weight array, in layer order."""
        for i, layer in enumerate(self.layers):
            for k, p in layer.params.items():
                yield layer, f"{i}.{k}", p, layer.grads[k]

    def forward(self, x):
        # No NaN check here: it would cost a pass over every batch. Data is checked once
        # where it enters: train(), evaluate() and predict_proba().
        for layer in self.layers:
            x = layer.forward(x)
        self.out = x
        return x

    def backward(self, dout, need_dx=True):
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout)
        return self.layers[0].backward(dout, need_dx=need_dx)

    def train(self):
        for layer in self.layers:
            layer.train()
        return super().train()

    def eval(self):
        for layer in self.layers:
            layer.eval()
        return super().eval()

    def predict_proba(self, x, batch_size=EVAL_BATCH_SIZE):
        """Class probabilities (N, C) in eval mode, computed in chunks to bound memory."""
        check_finite(x, "Sequential.predict_proba")
        with evaluating(self):
            return np.concatenate([softmax(self.forward(x[i:i + batch_size]))
                                   for i in range(0, len(x), batch_size)])

    def predict(self, x, batch_size=EVAL_BATCH_SIZE):
        """Predicted class indices (N,)."""
        return self.predict_proba(x, batch_size).argmax(axis=1)

    def summary(self, input_shape):
        """Per layer: output shape, parameter count and multiply-adds for one input; a Summary.

        input_shape: one example's shape without the batch axis, e.g. 784 or (1, 28, 28).
        One forward pass on zeros, in eval mode (no random draws); the layers' cached state
        (their last input and output, which the plots read) is put back afterwards.
        """
        dims = (input_shape,) if isinstance(input_shape, numbers.Integral) else tuple(input_shape)
        dtype = next((p.dtype for p in self.params.values()), np.float32)
        x = np.zeros((1, *(_int_arg("Sequential.summary", "input_shape", d) for d in dims)), dtype)
        saved, rows = [dict(layer.__dict__) for layer in self.layers], Summary()
        try:
            with evaluating(self):
                for i, layer in enumerate(self.layers):
                    x = layer.forward(x)
                    W = layer.params.get("W")
                    # One multiply-add per weight feeding each output value: W.size / b.size of them.
                    rows.append({"layer": f"{i} {type(layer).__name__}", "output_shape": x.shape[1:],
                                 "params": sum(p.size for p in layer.params.values()),
                                 "mult_adds": 0 if W is None else W.size * x.size // layer.params["b"].size})
        finally:
            for layer, state in zip(self.layers, saved):
                layer.__dict__.clear()
                layer.__dict__.update(state)
        return rows

    def config(self):
        return [{"type": type(layer).__name__, **layer.config()} for layer in self.layers]

    @staticmethod
    def param_shapes_of(config):
        """{"0.W": shape, ...} of the model from_config(config) would build, without building it."""
        return {f"{i}.{k}": shape for i, (kind, args) in enumerate(_layer_specs(config))
                for k, shape in kind.param_shapes(**args).items()}

    @classmethod
    def from_config(cls, config, rng=None, dtype=np.float32):
        """Rebuild a model from Sequential.config(); weights are freshly initialised."""
        rng = _as_rng(rng, "Sequential.from_config")
        layers = []
        for i, (kind, args) in enumerate(_layer_specs(config)):
            accepts = inspect.signature(kind).parameters
            shared = {k: v for k, v in (("rng", rng), ("dtype", dtype)) if k in accepts}
            try:
                layers.append(kind(**args, **shared))
            except TypeError as e:
                raise ValueError(f"layer {i} ({kind.__name__}): bad arguments {args}: {e}") from None
        return cls(layers)

    def __repr__(self):
        return "Sequential(\n" + "".join(f"  ({i}) {layer!r}\n" for i, layer in enumerate(self.layers)) + ")"


def _layer_specs(config):
    """[(layer class, constructor arguments)] of a Sequential.config() list, checked."""
    if not isinstance(config, (list, tuple)):
        raise ValueError(f"Sequential: expected a list of layer dicts, got {type(config).__name__}")
    specs = []
    for i, spec in enumerate(config):
        if not isinstance(spec, dict):
            raise ValueError(f"layer {i}: expected a dict with a 'type' key, got {type(spec).__name__}")
        args = dict(spec)
        name = args.pop("type", None)
        if not isinstance(name, str) or name not in LAYERS:
            raise ValueError(f"layer {i}: unknown layer type {name!r}; known types: {', '.join(LAYERS)}")
        accepts = set(inspect.signature(LAYERS[name]).parameters) - {"rng", "dtype"}
        if set(args) - accepts:
            raise ValueError(f"layer {i} ({name}): unknown arguments {sorted(map(str, set(args) - accepts))}; "
                             f"{name} takes {sorted(accepts)}")
        specs.append((LAYERS[name], args))
    return specs


def _check_image(layer, x, channels, kernel_size, padding=0):
    """Return (N, C, H, W) of x, or raise a ValueError naming the layer and the shapes."""
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        got = f"shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{layer!r}: expected images of shape (N, C, H, W), got {got}")
    n, c, h, w = x.shape
    if channels is not None and c != channels:
        raise ValueError(f"{layer!r}: expected {channels} channels, got input of shape {x.shape}")
    if min(h, w) + 2 * padding < kernel_size:
        pad = f" padded by {padding}" if padding else ""
        raise ValueError(f"{layer!r}: the image {h}x{w}{pad} is smaller than the "
                         f"{kernel_size}x{kernel_size} kernel (input shape {x.shape})")
    return n, c, h, w


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every deep-learning library) by im2col and one GEMM.

    x: (N, C, H, W) -> out: (N, F, Ho, Wo), Ho = (H + 2 * padding - k) // stride + 1 (Wo likewise);
    W: (F, C, k, k), b: (F,). He initialisation: std sqrt(2 / (C * k * k)).

    Inside, images are kept batch-innermost, (C, H, W, N) in memory: a slice of rows and
    columns is then a few long contiguous runs (3-4x faster to copy and add than NCHW's short
    rows), im2col gives cols (C*k*k, Ho*Wo*N), and W @ cols lands in the output's memory
    order; out is a transposed view. Every other layer works on any memory order.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None, dtype=np.float32):
        super().__init__()
        shapes = self.param_shapes(in_channels, out_channels, kernel_size)
        self.out_channels, self.in_channels, self.kernel_size, _ = shapes["W"]
        self.stride, self.padding = _int_arg("Conv2D", "stride", stride), _int_arg("Conv2D", "padding", padding, 0)
        rng, dtype = _as_rng(rng, "Conv2D"), _float_dtype("Conv2D", dtype)
        W = rng.standard_normal(shapes["W"]) * np.sqrt(2.0 / (self.in_channels * self.kernel_size ** 2))
        self.params = {"W": W.astype(dtype), "b": np.zeros(shapes["b"], dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    @staticmethod
    def param_shapes(in_channels, out_channels, kernel_size, **_):
        c, f, k = (_int_arg("Conv2D", name, v) for name, v in (
            ("in_channels", in_channels), ("out_channels", out_channels), ("kernel_size", kernel_size)))
        return {"W": (f, c, k, k), "b": (f,)}

    def _offsets(self, ho, wo):
        """Yield (i, j, rows, cols): the input positions kernel entry (i, j) meets, as two slices."""
        k, s = self.kernel_size, self.stride
        for i in range(k):
            for j in range(k):
                yield i, j, slice(i, i + s * (ho - 1) + 1, s), slice(j, j + s * (wo - 1) + 1, s)

    def forward(self, x):
        n, c, h, w = _check_image(self, x, self.in_channels, self.kernel_size, self.padding)
        k, p = self.kernel_size, self.padding
        ho, wo = (h + 2 * p - k) // self.stride + 1, (w + 2 * p - k) // self.stride + 1
        if p:
            xc = np.zeros((c, h + 2 * p, w + 2 * p, n), dtype=x.dtype)
            xc[:, p:p + h, p:p + w] = x.transpose(1, 2, 3, 0)
        else:
            xc = np.ascontiguousarray(x.transpose(1, 2, 3, 0))  # no copy if x came from a Conv2D
        # im2col: one copy per kernel entry (k*k strided copies), not one per output pixel.
        cols = np.empty((c, k, k, ho, wo, n), dtype=x.dtype)
        for i, j, rows, cs in self._offsets(ho, wo):
            cols[:, i, j] = xc[:, rows, cs]
        self.cols, self.x_shape = cols.reshape(c * k * k, ho * wo * n), x.shape
        out = self.params["W"].reshape(self.out_channels, -1) @ self.cols  # (F, Ho*Wo*N)
        out += self.params["b"][:, None]
        self.out = out.reshape(self.out_channels, ho, wo, n).transpose(3, 0, 1, 2)
        return self.out

    def backward(self, dout, need_dx=True):
        n, c, h, w = self.x_shape
        k, p, f = self.kernel_size, self.padding, self.out_channels
        ho, wo = dout.shape[2:]
        d = dout.transpose(1, 2, 3, 0).reshape(f, -1)  # (F, Ho*Wo*N); no copy if dout is in our layout
        # dW = d @ cols.T, db = d.sum(axis=1); dW as (cols @ d.T).T, which OpenBLAS runs 1.5-2x faster.
        self.grads["W"][...] = (self.cols @ d.T).T.reshape(self.params["W"].shape)
        self.grads["b"][...] = d.sum(axis=1)
        if not need_dx:
            return None
        dcols = (self.params["W"].reshape(f, -1).T @ d).reshape(c, k, k, ho, wo, n)
        # col2im: the same walk as im2col, adding where overlapping windows share a pixel.
        dx = np.zeros((c, h + 2 * p, w + 2 * p, n), dtype=dcols.dtype)
        for i, j, rows, cs in self._offsets(ho, wo):
            dx[:, rows, cs] += dcols[:, i, j]
        return dx[:, p:p + h, p:p + w].transpose(3, 0, 1, 2)

    def config(self):
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


class MaxPool2D(Layer):
    """Max pooling over k x k windows: (N, C, H, W) -> (N, C, Ho, Wo), Ho = (H - k) // stride + 1.

    stride defaults to kernel_size (non-overlapping windows). On a tie the gradient goes to
    the first maximum in the window (row by row), as in PyTorch: a flat background is full
    of ties, and copying the gradient to every tied position would multiply it.
    """

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = _int_arg("MaxPool2D", "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _int_arg("MaxPool2D", "stride", stride)

    def _windows(self, x):
        """The k*k strided views of x, one per window position, each (N, C, Ho, Wo)."""
        k, s = self.kernel_size, self.stride
        ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
        return [x[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] for i in range(k) for j in range(k)]

    def forward(self, x):
        _check_image(self, x, None, self.kernel_size)
        windows = self._windows(x)
        out = np.copy(windows[0])  # np.copy keeps x's memory order
        for view in windows[1:]:
            np.maximum(out, view, out=out)
        # masks[t] marks the outputs whose maximum came from window position t; a tie
        # goes to the first position (taken), so each output has exactly one.
        self.masks = [view == out for view in windows]  # each in x's memory order, like out
        taken = np.copy(self.masks[0])
        for mask in self.masks[1:]:
            mask &= ~taken
            taken |= mask
        self.x, self.out = x, out
        return out

    def backward(self, dout, need_dx=True):
        if dout.strides != self.out.strides:
            # One copy into out's memory order (e.g. after Flatten) makes the k*k products below fast.
            same_order = np.empty_like(self.out)
            same_order[...] = dout
            dout = same_order
        dx = np.zeros_like(self.x)
        for view, mask in zip(self._windows(dx), self.masks):
            if self.stride >= self.kernel_size:
                np.multiply(dout, mask, out=view)  # windows do not overlap: write, no need to add
            else:
                view += dout * mask
        return dx

    def config(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride}


class Flatten(Layer):
    """(N, d_1, ..., d_k) -> (N, d_1 * ... * d_k); backward restores the shape."""

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            raise ValueError(f"{self!r}: expected input of shape (N, ...) with at least 2 dimensions, "
                             f"got {getattr(x, 'shape', type(x).__name__)}")
        self.x_shape = x.shape
        self.out = x.reshape(len(x), -1)
        return self.out

    def backward(self, dout, need_dx=True):
        return dout.reshape(self.x_shape)


def lenet5(in_channels=1, image_size=28, num_classes=10, rng=None, dtype=np.float32, dropout=0.0):
    """LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, for (N, in_channels, image_size, image_size).

    conv 6@5x5 -> pool 2 -> conv 16@5x5 -> pool 2 -> fc 120 -> fc 84 -> fc num_classes, ReLU
    between (and Dropout after fc 120 and fc 84, if dropout > 0). The first conv pads by 2 for
    28x28 images, so that the second conv sees 14x14 as in the original 32x32 design; the
    flatten size follows from image_size.
    """
    rng = _as_rng(rng, "lenet5")
    in_channels, image_size, num_classes = (_int_arg("lenet5", name, v) for name, v in (
        ("in_channels", in_channels), ("image_size", image_size), ("num_classes", num_classes)))
    dropout = _fraction_arg("lenet5", "dropout", dropout)

    def hidden(n_in, n_out):
        return [Linear(n_in, n_out, rng=rng, dtype=dtype), ReLU()] + ([Dropout(dropout, rng=rng)] if dropout else [])

    pad = 2 if image_size == 28 else 0
    side = ((image_size + 2 * pad - 4) // 2 - 4) // 2
    if side < 1:
        raise ValueError(f"lenet5: image_size {image_size} is too small; LeNet-5 needs at least 16 pixels")
    return Sequential([
        Conv2D(in_channels, 6, 5, padding=pad, rng=rng, dtype=dtype), ReLU(), MaxPool2D(2),
        Conv2D(6, 16, 5, rng=rng, dtype=dtype), ReLU(), MaxPool2D(2),
        Flatten(), *hidden(16 * side * side, 120), *hidden(120, 84),
        Linear(84, num_classes, rng=rng, dtype=dtype),
    ])


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh}
INIT_FOR = {"relu": "he", "leaky_relu": "he", "sigmoid": "glorot", "tanh": "glorot"}


def mlp(sizes, activation="relu", dropout=0.0, rng=None, dtype=np.float32):
    """A multilayer perceptron from a size list, e.g. mlp([784, 256, 128, 10], "relu").

    Linear layers with the activation (and Dropout, if dropout > 0) between them; the
    last Linear outputs logits. Weights: He for the ReLU family, Glorot for sigmoid and tanh.
    """
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"mlp: unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if not isinstance(sizes, (list, tuple, range, np.ndarray)):
        raise ValueError(f"mlp: sizes must be a list of integers, got {type(sizes).__name__} {sizes!r}")
    sizes = [_int_arg("mlp", f"sizes[{i}]", s) for i, s in enumerate(sizes)]
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes must list at least an input and an output size, got {sizes}")
    dropout, rng = _fraction_arg("mlp", "dropout", dropout), _as_rng(rng, "mlp")
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(n_in, n_out, init=INIT_FOR[activation], rng=rng, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout, rng=rng))
    return Sequential(layers)


LAYERS = {cls.__name__: cls for cls in (Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, Dropout,
                                       Conv2D, MaxPool2D, Flatten)}
