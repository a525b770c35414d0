"""Networks made of module.py's layers: Sequential, the MLP and LeNet-5, a model from its config, a summary.

A model is a Sequential, a chain of layers that keeps the layer contract of module.py. Its
config() is a list of {"type": layer name, **arguments}; from_config(config) builds the same
architecture again (fresh weights), which is how a checkpoint comes back, and
param_shapes(config) says which weight shapes it will have.
"""
import contextlib
import inspect
import numbers
from typing import NamedTuple

import numpy as np

from module import Conv2D, Dropout, Flatten, Layer, LeakyReLU, Linear, MaxPool2D, ReLU, Sigmoid, Tanh, softmax
from utils.plumbing.config_files import check_mlp_size
from utils.plumbing.language import _
from utils.plumbing.language import width as text_width
from utils.plumbing.validate import check_finite, check_fraction, check_int, check_rng

# Inference runs in chunks of at most this many images, and of at most INFERENCE_BYTES in the
# largest im2col matrix: LeNet-5's first holds 25 values per pixel, 80 MB for 1,024 Fashion-MNIST
# images (780 MB for the whole test set). Chunks of 16 MB (213 images) evaluate 3x faster than
# chunks of 1,024: memory the allocator keeps is reused, while 80 MB is mapped afresh each time.
EVAL_BATCH_SIZE = 1024
INFERENCE_BYTES = 2**24


def inference_batch_size(model, example_shape, itemsize=4):
    """Images per inference chunk for inputs of example_shape (one example, e.g. (1, 28, 28)):
    EVAL_BATCH_SIZE, or fewer where a Conv2D's im2col matrix would exceed INFERENCE_BYTES."""
    shape, largest = tuple(example_shape), 0
    for layer in getattr(model, "layers", ()):  # a model that is not a Sequential: EVAL_BATCH_SIZE
        if len(shape) != 3:
            break
        c, h, w = shape
        if isinstance(layer, Conv2D):
            k, p, s = layer.kernel_size, layer.padding, layer.stride
            ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            largest = max(largest, c * k * k * ho * wo * itemsize)
            shape = (layer.out_channels, ho, wo)
        elif isinstance(layer, MaxPool2D):
            k, s = layer.kernel_size, layer.stride
            shape = (c, (h - k) // s + 1, (w - k) // s + 1)
        elif isinstance(layer, Flatten):
            break
    return EVAL_BATCH_SIZE if not largest else max(1, min(EVAL_BATCH_SIZE, INFERENCE_BYTES // largest))


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


def linear_layers(model):
    """[(index, layer)] of the model's Linear layers, in order."""
    return [(i, layer) for i, layer in enumerate(model.layers) if isinstance(layer, Linear)]


class FlatParameters(NamedTuple):
    """Every parameter of a model in one array, every gradient in another (see Sequential.flat), and a
    scratch array of the same size for the optimisers."""
    params: np.ndarray   # 1-D: the weights "W" of all layers, then the other parameters (biases)
    grads: np.ndarray    # the same layout
    n_weights: int       # params[:n_weights] are the weights, what L2 penalises
    layout: tuple        # ((name, start, stop, shape), ...): where each parameter lies
    work: np.ndarray     # scratch of the same size for an update's temporaries (lr * dW, ...):
                         # SGD (but Nesterov), Adam and L2 need no new arrays; it holds nothing between steps


def pack_parameters(layers):
    """Move the layers' parameters and gradients into two flat arrays; their dicts then hold views.

    The values are copied over, so nothing changes but where they live. Returns
    (FlatParameters, [(layer, key, param view, grad view)]), or (None, []) when there is
    nothing to pack or the arrays differ in dtype.
    """
    entries = [(f"{i}.{k}", layer, k) for i, layer in enumerate(layers) for k in layer.params]
    dtypes = {a.dtype for _, layer, k in entries for a in (layer.params[k], layer.grads[k])}
    if not entries or len(dtypes) != 1:
        return None, []
    dtype = dtypes.pop()
    entries.sort(key=lambda e: e[2] != "W")  # weights first (a stable sort keeps the layer order)
    total = sum(layer.params[k].size for _, layer, k in entries)
    params, grads = np.empty(total, dtype), np.empty(total, dtype)
    layout, views, start, n_weights = [], [], 0, 0
    for name, layer, k in entries:
        shape, stop = layer.params[k].shape, start + layer.params[k].size
        p, g = params[start:stop].reshape(shape), grads[start:stop].reshape(shape)
        p[...], g[...] = layer.params[k], layer.grads[k]
        layer.params[k], layer.grads[k] = p, g
        layout.append((name, start, stop, shape))
        views.append((layer, k, p, g))
        n_weights = stop if k == "W" else n_weights
        start = stop
    return FlatParameters(params, grads, n_weights, tuple(layout), np.empty_like(params)), views


class Sequential(Layer):
    """An ordered list of layers: forward walks it, backward walks it in reverse.

    params and grads are flat dicts keyed "index.name" (e.g. "0.W"), holding the very
    arrays of the layers, so an optimiser that updates them in place updates the model.
    Those arrays are views of two flat arrays, one for the parameters and one for the
    gradients (see flat()), so that an optimiser can update them all in one pass.
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
        self._flat, self._flat_views = pack_parameters(layers)

    def flat(self):
        """The FlatParameters the model was built with, or None if there are none or they no longer
        hold the model: a layer's parameter or gradient array was replaced (not written into), or
        a layer with parameters was added. Then the optimisers update parameter by parameter."""
        if self._flat is None:
            return None
        for layer, k, p, g in self._flat_views:
            if layer.params.get(k) is not p or layer.grads.get(k) is not g:
                return None
        if sum(len(layer.params) for layer in self.layers) != len(self._flat_views):
            return None
        return self._flat

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

    def predict_proba(self, x, batch_size=None):
        """Class probabilities (N, C) in eval mode, computed in chunks to bound memory
        (batch_size None: see inference_batch_size)."""
        check_finite(x, "Sequential.predict_proba")
        batch_size = batch_size or inference_batch_size(self, x.shape[1:], x.itemsize)
        with evaluating(self):
            return np.concatenate([softmax(self.forward(x[i:i + batch_size]))
                                   for i in range(0, len(x), batch_size)])

    def predict(self, x, batch_size=None):
        """Predicted class indices (N,)."""
        return self.predict_proba(x, batch_size).argmax(axis=1)

    def config(self):
        return [{"type": type(layer).__name__, **layer.config()} for layer in self.layers]

    def __repr__(self):
        return "Sequential(\n" + "".join(f"  ({i}) {layer!r}\n" for i, layer in enumerate(self.layers)) + ")"


ACTIVATIONS = {"relu": ReLU, "leaky_relu": LeakyReLU, "sigmoid": Sigmoid, "tanh": Tanh}
INIT_FOR = {"relu": "he", "leaky_relu": "he", "sigmoid": "glorot", "tanh": "glorot"}
LAYERS = {cls.__name__: cls for cls in (Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Dropout, Conv2D, MaxPool2D, Flatten)}


def mlp(sizes, activation="relu", dropout=0.0, rng=None, dtype=np.float32):
    """A multilayer perceptron from a size list, e.g. mlp([784, 256, 128, 10], "relu").

    Linear layers with the activation (and Dropout, if dropout > 0) between them; the
    last Linear outputs logits. Weights: He for the ReLU family, Glorot for sigmoid and tanh.
    """
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"mlp: unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if not isinstance(sizes, (list, tuple, range, np.ndarray)):
        raise ValueError(f"mlp: sizes must be a list of integers, got {type(sizes).__name__} {sizes!r}")
    sizes = [check_int(f"mlp: sizes[{i}]", s, low=1) for i, s in enumerate(sizes)]
    if len(sizes) < 2:
        raise ValueError(f"mlp: sizes must list at least an input and an output size, got {sizes}")
    check_mlp_size(sizes, "mlp")  # before anything is allocated: a MemoryError would say less
    dropout, rng = check_fraction("mlp: dropout", dropout), check_rng("mlp: rng", rng)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(n_in, n_out, init=INIT_FOR[activation], rng=rng, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(Dropout(dropout, rng=rng))
    return Sequential(layers)


def lenet5(in_channels=1, image_size=28, num_classes=10, rng=None, dtype=np.float32, dropout=0.0):
    """LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, for (N, in_channels, image_size, image_size).

    conv 6@5x5 -> pool 2 -> conv 16@5x5 -> pool 2 -> fc 120 -> fc 84 -> fc num_classes, ReLU
    between (and Dropout after fc 120 and fc 84, if dropout > 0). The first conv pads by 2 for
    28x28 images, so that the second conv sees 14x14 as in the original 32x32 design; the
    flatten size follows from image_size.
    """
    rng = check_rng("lenet5: rng", rng)
    in_channels, image_size, num_classes = (check_int(f"lenet5: {name}", v, low=1) for name, v in (
        ("in_channels", in_channels), ("image_size", image_size), ("num_classes", num_classes)))
    dropout = check_fraction("lenet5: dropout", dropout)

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


# ---------------------------------------------------------------- a model from its config

def layer_specs(config):
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


def param_shapes(config):
    """{"0.W": shape, ...} of the model from_config(config) would build, without building it."""
    return {f"{i}.{k}": shape for i, (kind, args) in enumerate(layer_specs(config))
            for k, shape in kind.param_shapes(**args).items()}


def from_config(config, rng=None, dtype=np.float32):
    """Rebuild a model from Sequential.config(); weights are freshly initialised."""
    rng = check_rng("from_config: rng", rng)
    layers = []
    for i, (kind, args) in enumerate(layer_specs(config)):
        accepts = inspect.signature(kind).parameters
        shared = {k: v for k, v in (("rng", rng), ("dtype", dtype)) if k in accepts}
        try:
            layers.append(kind(**args, **shared))
        except TypeError as e:
            raise ValueError(f"layer {i} ({kind.__name__}): bad arguments {args}: {e}") from None
    return Sequential(layers)


# ---------------------------------------------------------------- summary

def padded(text, width):
    """text padded with spaces to width terminal columns, right-aligned (left-aligned for a negative width);
    a Chinese character takes two columns, so the columns of a Chinese table line up too."""
    fill = " " * max(abs(width) - text_width(text), 0)
    return text + fill if width < 0 else fill + text


class Summary(list):
    """The rows of summary() (dicts: layer, output_shape, params, mult_adds), shown as a table."""

    def __repr__(self):
        def line(name, shape, params, mult_adds):
            return padded(name, -16) + padded(shape, 18) + padded(params, 13) + padded(mult_adds, 15)
        return "\n".join([line(_("layer"), _("output shape"), _("parameters"), _("mult-adds"))]
                         + [line(r["layer"], str(r["output_shape"]), f"{r['params']:,}", f"{r['mult_adds']:,}")
                            for r in self]
                         + [line(_("total"), "", f"{sum(r['params'] for r in self):,}",
                                 f"{sum(r['mult_adds'] for r in self):,}")])

    __str__ = __repr__


def summary(model, input_shape):
    """Per layer of a Sequential: output shape, parameter count and multiply-adds for one input.

    input_shape: one example's shape without the batch axis, e.g. 784 or (1, 28, 28).
    One forward pass on zeros, in eval mode (no random draws); the layers' cached state
    (their last input and output, which the plots read) is put back afterwards.
    """
    dims = (input_shape,) if isinstance(input_shape, numbers.Integral) else tuple(input_shape)
    dtype = next((p.dtype for p in model.params.values()), np.float32)
    x = np.zeros((1, *(check_int("summary: input_shape", d, low=1) for d in dims)), dtype)
    saved, rows = [dict(layer.__dict__) for layer in model.layers], Summary()
    try:
        with evaluating(model):
            for i, layer in enumerate(model.layers):
                x = layer.forward(x)
                W = layer.params.get("W")
                # One multiply-add per weight feeding each output value: W.size / b.size of them.
                rows.append({"layer": f"{i} {type(layer).__name__}", "output_shape": x.shape[1:],
                             "params": sum(p.size for p in layer.params.values()),
                             "mult_adds": 0 if W is None else W.size * x.size // layer.params["b"].size})
    finally:
        for layer, state in zip(model.layers, saved):
            layer.__dict__.clear()
            layer.__dict__.update(state)
    return rows
