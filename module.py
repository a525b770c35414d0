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
backward multiplies ``dout`` by it, and the diagnostics read it. A model is a chain of
layers, ``utils.core.models.Sequential``, which keeps the same contract. The loss,
``SoftmaxCrossEntropy``, sits outside the model: training needs it, inference does not.
Arrays keep the dtype they come in with: float32 for training, float64 for gradient checks. Bad
arguments raise a ValueError naming the parameter, the value and what is expected (``utils.plumbing.validate``).
"""
import numpy as np

from utils.plumbing.random_bits import uniform_at_least
from utils.plumbing.validate import check_float_dtype, check_fraction, check_image, check_input, check_int, check_rng


def column_sum(a, out):
    """a.sum(axis=0) for a of shape (N, D), written into out (D,).

    Computed as the product ones @ a, which BLAS runs 2-3x faster than np.sum (the last
    bits can differ from a.sum(axis=0): the additions happen in another order).
    """
    return np.matmul(np.ones(len(a), a.dtype), a, out=out)


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
        rng, dtype = check_rng("Linear: rng", rng), check_float_dtype("Linear: dtype", dtype)
        (self.in_features, self.out_features), self.init = shapes["W"], init
        fan = self.in_features if init == "he" else self.in_features + self.out_features
        W = rng.standard_normal(shapes["W"]) * np.sqrt(2.0 / fan)
        self.params = {"W": W.astype(dtype), "b": np.zeros(shapes["b"], dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    @staticmethod
    def param_shapes(in_features, out_features, **_):
        n_in = check_int("Linear: in_features", in_features, low=1)
        n_out = check_int("Linear: out_features", out_features, low=1)
        return {"W": (n_in, n_out), "b": (n_out,)}

    def forward(self, x):
        check_input(self, x, 2, self.in_features)
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
        self.alpha = check_fraction("LeakyReLU: alpha", alpha)

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


class Dropout(Layer):
    """Inverted dropout: in training, zero each unit with probability p and scale the rest by 1/(1-p).

    In eval mode it is the identity, so nothing changes at test time. Any shape.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p, self.rng = check_fraction("Dropout: p", p), check_rng("Dropout: rng", rng)

    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask, self.out = None, x
        else:
            keep = uniform_at_least(self.rng, x.shape, self.p)  # rng.random(shape, float32) >= p, twice as fast
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
        check_input(self, logits, 2)
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
        self.stride = check_int("Conv2D: stride", stride, low=1)
        self.padding = check_int("Conv2D: padding", padding, low=0)
        rng, dtype = check_rng("Conv2D: rng", rng), check_float_dtype("Conv2D: dtype", dtype)
        W = rng.standard_normal(shapes["W"]) * np.sqrt(2.0 / (self.in_channels * self.kernel_size ** 2))
        self.params = {"W": W.astype(dtype), "b": np.zeros(shapes["b"], dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    @staticmethod
    def param_shapes(in_channels, out_channels, kernel_size, **_):
        c, f, k = (check_int(f"Conv2D: {name}", v, low=1) for name, v in (
            ("in_channels", in_channels), ("out_channels", out_channels), ("kernel_size", kernel_size)))
        return {"W": (f, c, k, k), "b": (f,)}

    def _offsets(self, ho, wo):
        """Yield (i, j, rows, cols): the input positions kernel entry (i, j) meets, as two slices."""
        k, s = self.kernel_size, self.stride
        for i in range(k):
            for j in range(k):
                yield i, j, slice(i, i + s * (ho - 1) + 1, s), slice(j, j + s * (wo - 1) + 1, s)

    def forward(self, x):
        n, c, h, w = check_image(self, x, self.in_channels, self.kernel_size, self.padding)
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
    The maximum is a knockout tournament between the k*k window positions (strided views of x): pairs
    play, the larger goes on (on a tie the earlier: players stay in window order, an odd one out waits
    at the end of the line, so the first maximum wins) until one is left; backward replays it from the
    final to send each output's gradient to its winner.
    """

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size = check_int("MaxPool2D: kernel_size", kernel_size, low=1)
        self.stride = self.kernel_size if stride is None else check_int("MaxPool2D: stride", stride, low=1)

    def _windows(self, x):
        """The k*k strided views of x, one per window position, each (N, C, Ho, Wo)."""
        k, s = self.kernel_size, self.stride
        ho, wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
        return [x[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] for i in range(k) for j in range(k)]

    def forward(self, x):
        check_image(self, x, None, self.kernel_size)
        players, self.rounds = self._windows(x), []
        while len(players) > 1:
            matches = list(zip(players[0::2], players[1::2]))  # an odd one out waits at the end of the line
            self.rounds.append([np.greater(second, first) for first, second in matches])  # "second won"; ties: first
            players = [np.maximum(first, second) for first, second in matches] + players[2 * len(matches):]
        out = players[0] if self.rounds else np.copy(players[0])  # 1 x 1 windows play no match: copy, not x itself
        self.x, self.out = x, out  # in x's memory order: ufuncs allocate their output in their inputs' order
        return out

    def backward(self, dout, need_dx=True):
        if dout.strides != self.out.strides:  # e.g. after Flatten: the products below are faster in out's order
            dout = np.positive(dout, out=np.empty_like(self.out))  # a copy of dout, in out's memory order
        paths = [np.ones_like(self.out, dtype=bool)]  # paths[p]: the outputs whose gradient goes to player p
        for second_won in reversed(self.rounds):  # from the final back: each match's outputs go to its winner
            split = []
            for path, won in zip(paths, second_won):
                split += [np.greater(path, won), path & won]  # for booleans a > b is "a and not b": one pass
            paths = split + paths[len(second_won):]  # a player who waited keeps its outputs
        k, (h, w) = self.kernel_size, self.x.shape[2:]
        tiled = self.stride == k and h % k == 0 and w % k == 0  # the windows cover every input once
        dx = np.empty_like(self.x) if tiled else np.zeros_like(self.x)  # empty: each value is written below
        for view, path in zip(self._windows(dx), paths):  # one path per window position, in _windows' order
            if self.stride >= self.kernel_size:
                np.multiply(dout, path, out=view)  # windows do not overlap: write, no need to add
            else:
                view += dout * path
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
