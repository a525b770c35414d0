# Solutions to notebooks/06_exercises.ipynb, one section per exercise cell.
#
# `make solutions` (python -m utils grade --solutions) executes a temporary copy of the
# notebook in which each exercise cell is replaced by its section below, and fails unless
# every check prints "correct". The committed notebook is never changed. To hand the
# exercises out without answers, give students the repository without this folder.
#
# A section starts with a line "# %% exercise: <name>"; <name> matches the "exercise" key
# in the metadata of the notebook cell it replaces.

# %% exercise: linear
class Linear(Layer):
    """out = x @ W + b.  x: (N, D) -> out: (N, M);  W: (D, M), b: (M,)."""

    def __init__(self, in_features, out_features, rng=None):
        super().__init__()
        W = np.random.default_rng(rng).standard_normal((in_features, out_features)) * np.sqrt(2 / in_features)
        self.params = {"W": W, "b": np.zeros(out_features)}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros(out_features)}

    def forward(self, x):
        self.x = x  # backward needs the input
        return x @ self.params["W"] + self.params["b"]

    def backward(self, dout):
        self.grads["W"] = self.x.T @ dout
        self.grads["b"] = dout.sum(axis=0)
        return dout @ self.params["W"].T

# %% exercise: relu
class ReLU(Layer):
    """out = max(x, 0), elementwise."""

    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * (self.x > 0)

# %% exercise: sigmoid
class Sigmoid(Layer):
    """out = 1 / (1 + exp(-x)), elementwise."""

    def forward(self, x):
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)

# %% exercise: tanh
class Tanh(Layer):
    """out = tanh(x), elementwise."""

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out ** 2)

# %% exercise: softmax_cross_entropy
def softmax_cross_entropy(logits, y):
    """logits (N, C), y (N,) integer labels -> (loss, dlogits (N, C))."""
    n = len(y)
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(n), y]).mean()
    dlogits = p.copy()
    dlogits[np.arange(n), y] -= 1
    return loss, dlogits / n

# %% exercise: l2
def l2_regularization(params, l2_lambda):
    """params: {name: array}, as Sequential.params -> (penalty, {name: gradient of the penalty})."""
    weights = {name: W for name, W in params.items() if name.endswith(".W")}
    penalty = l2_lambda / 2 * sum(np.sum(W ** 2) for W in weights.values())
    return penalty, {name: l2_lambda * W for name, W in weights.items()}

# %% exercise: momentum
def sgd_momentum(w, dw, v, lr, momentum):
    """One step of SGD with momentum -> (new w, new v)."""
    v = momentum * v - lr * dw
    return w + v, v

# %% exercise: schedules
def step_decay(t, lr, decay_factor, decay_steps):
    return lr * decay_factor ** (t // decay_steps)


def exponential_decay(t, lr, decay_factor, decay_steps):
    return lr * decay_factor ** (t / decay_steps)

# %% exercise: maxpool
class MaxPool2D(Layer):
    """Max over non-overlapping k x k windows: (N, C, H, W) -> (N, C, H // k, W // k)."""

    def __init__(self, kernel_size):
        super().__init__()
        self.k = kernel_size

    def windows(self, x):
        """(N, C, H, W) -> (N, C, H // k, W // k, k * k): the values of each window in one row."""
        n, c, h, w = x.shape
        k = self.k
        return x.reshape(n, c, h // k, k, w // k, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // k, w // k, k * k)

    def forward(self, x):
        self.x = x
        self.out = self.windows(x).max(axis=-1)
        return self.out

    def backward(self, dout):
        n, c, h, w = self.x.shape
        k = self.k
        first = self.windows(self.x).argmax(axis=-1)  # argmax returns the first of tied maxima
        dwin = np.zeros((n, c, h // k, w // k, k * k))
        np.put_along_axis(dwin, first[..., None], dout[..., None], axis=-1)
        return dwin.reshape(n, c, h // k, w // k, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)

# %% exercise: im2col
def im2col(x, kernel_size, stride, padding):
    """x (N, C, H, W) -> cols (N * Ho * Wo, C * k * k)."""
    k, s, p = kernel_size, stride, padding
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    n, c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    cols = np.empty((n, ho, wo, c, k, k))
    for i in range(ho):
        for j in range(wo):
            cols[:, i, j] = x[:, :, i * s:i * s + k, j * s:j * s + k]
    return cols.reshape(n * ho * wo, c * k * k)

# %% exercise: conv2d
class Conv2D(Layer):
    """x (N, C, H, W) -> out (N, F, Ho, Wo);  W: (F, C, k, k), b: (F,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None):
        super().__init__()
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        W = np.random.default_rng(rng).standard_normal(shape) * np.sqrt(2 / (in_channels * kernel_size ** 2))
        self.params = {"W": W, "b": np.zeros(out_channels)}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros(out_channels)}
        self.k, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        n, _, h, w = x.shape
        f = len(self.params["b"])
        ho = (h + 2 * self.padding - self.k) // self.stride + 1
        wo = (w + 2 * self.padding - self.k) // self.stride + 1
        self.x_shape = x.shape
        self.cols = im2col(x, self.k, self.stride, self.padding)
        out = self.cols @ self.params["W"].reshape(f, -1).T + self.params["b"]
        return out.reshape(n, ho, wo, f).transpose(0, 3, 1, 2)

    def backward(self, dout):
        f = dout.shape[1]
        d = dout.transpose(0, 2, 3, 1).reshape(-1, f)  # (N * Ho * Wo, F), rows as in cols
        self.grads["W"] = (d.T @ self.cols).reshape(self.params["W"].shape)
        self.grads["b"] = d.sum(axis=0)
        dcols = d @ self.params["W"].reshape(f, -1)
        return col2im(dcols, self.x_shape, self.k, self.stride, self.padding)

# %% exercise: grid_search
def grid_search(space, score):
    """Every combination of space's values -> list of {**point, "val_acc": score}, best first."""
    results = []
    for values in itertools.product(*space.values()):
        point = dict(zip(space, values))
        results.append({**point, "val_acc": score(**point)})
    return sorted(results, key=lambda r: r["val_acc"], reverse=True)
