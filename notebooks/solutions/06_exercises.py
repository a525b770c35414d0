# Solutions to notebooks/06_exercises.ipynb, one section per exercise cell.
#
# `make solutions` (python -m utils grade --solutions) executes a temporary copy of the
# notebook in which each exercise cell is replaced by its section below, and fails unless
# every check prints "correct". The committed notebook is never changed. To hand the
# exercises out without answers, give students the repository without this folder.
#
# A section starts with a line "# %% exercise: <name>"; <name> matches the "exercise" key
# in the metadata of the notebook cell it replaces. The model answers to the notebook's
# written questions are in 06_answers.md, beside this file.

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
        # Into the arrays, not `self.grads["W"] = ...`: the network and the optimiser hold references
        # to them (Network.grads is built once), and a new array would never reach them.
        self.grads["W"][...] = self.x.T @ dout
        self.grads["b"][...] = dout.sum(axis=0)
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
    """logits (N, K), y (N,) integer labels -> (loss, dlogits (N, K))."""
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


# %% exercise: train_epoch
def train_epoch(net, X, y, optimizer, schedule, rng, it=0, batch_size=64, l2_lambda=0.0,
                loss_fn=softmax_cross_entropy, l2_fn=l2_regularization):
    """One pass over (X, y) in a fresh random order -> (the loss of every step, it at the end)."""
    net.train()  # dropout on: evaluation may have left the network in eval mode
    order = rng.permutation(len(X))  # one order for X and y, so each label stays with its image
    losses = []
    for first in range(0, len(X), batch_size):  # the last batch may be smaller: it is not dropped
        idx = order[first:first + batch_size]
        optimizer.lr = schedule(it)  # before the step: each step uses its own iteration's rate
        loss, dlogits = loss_fn(net.forward(X[idx]), y[idx])
        net.backward(dlogits)  # the layers write this batch's gradients into net.grads
        penalty, l2_grads = l2_fn(net.params, l2_lambda)
        for name, g in l2_grads.items():
            net.grads[name] += g  # L2 in the gradient ...
        optimizer.step(net.params, net.grads)
        losses.append(loss + penalty)  # ... and in the loss
        it += 1
    return losses, it


# %% exercise: fit
def load_params(net, params):
    """Write saved arrays into the network's own arrays (which the layers and the optimiser hold)."""
    for name, value in params.items():
        net.params[name][...] = value


def fit(net, run_epoch, evaluate, num_epochs):
    """Train num_epochs epochs, keep the best by validation accuracy, load it back -> (history, best)."""
    history, best = [], {"epoch": 0, "val_acc": -1.0, "params": None}
    for epoch in range(1, num_epochs + 1):
        train_loss = run_epoch(epoch)
        val_loss, val_acc = evaluate(net)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc})
        if val_acc > best["val_acc"]:
            # Copies: net.params holds the live arrays, which the next epochs keep changing.
            best = {"epoch": epoch, "val_acc": val_acc, "params": {k: v.copy() for k, v in net.params.items()}}
    load_params(net, best["params"])
    return history, best


# %% exercise: evaluate
def evaluate(net, X, y, batch_size=1000, loss_fn=softmax_cross_entropy):
    """Mean loss and accuracy of net on (X, y), in eval mode, batch by batch -> (loss, accuracy)."""
    net.eval()  # dropout off
    total_loss, correct = 0.0, 0
    for first in range(0, len(X), batch_size):
        logits = net.forward(X[first:first + batch_size])
        yb = y[first:first + batch_size]
        total_loss += loss_fn(logits, yb)[0] * len(yb)  # weighted: the last batch may be smaller
        correct += int((logits.argmax(axis=1) == yb).sum())
    return total_loss / len(X), correct / len(X)


def confusion_matrix(y_true, y_pred, num_classes=10):
    """(K, K) counts: row = the true class, column = the predicted class."""
    M = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(M, (y_true, y_pred), 1)
    return M


# %% exercise: plots
def plot_curves(history):
    """Training and validation loss, and validation accuracy, per epoch -> the Figure."""
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(epochs, [row["train_loss"] for row in history], "o-", label="training")
    ax_loss.plot(epochs, [row["val_loss"] for row in history], "o-", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [row["val_acc"] for row in history], "o-", color="C1")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("validation accuracy")
    return fig


def plot_first_layer(W, count=16):
    """The weights into each of the first count hidden units, W[:, j], as 28 x 28 images -> the Figure."""
    fig, axes = plt.subplots(2, count // 2, figsize=(count // 2 * 1.2, 2.6))
    for j, ax in enumerate(axes.flat):
        ax.imshow(W[:, j].reshape(28, 28), cmap="RdBu_r")
        ax.set_axis_off()
    return fig


# %% exercise: dropout
class Dropout(Layer):
    """Inverted dropout: in training zero each unit with probability p, scale the rest by 1 / (1 - p)."""

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p, self.rng = p, np.random.default_rng(rng)

    def forward(self, x):
        if not self.training:
            self.mask = None
            return x
        self.mask = (self.rng.random(x.shape) >= self.p) / (1 - self.p)
        return x * self.mask

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask


# %% exercise: adam
class Adam:
    """Adam: per-parameter steps from running averages of the gradient (m) and of its square (v)."""

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t, self.m, self.v = 0, {}, {}

    def step(self, params, grads):
        self.t += 1  # once per step, before the bias correction: the first step has t = 1
        for name, p in params.items():
            g = grads[name]
            m = self.m[name] = self.beta1 * self.m.get(name, 0) + (1 - self.beta1) * g
            v = self.v[name] = self.beta2 * self.v.get(name, 0) + (1 - self.beta2) * g ** 2
            m_hat, v_hat = m / (1 - self.beta1 ** self.t), v / (1 - self.beta2 ** self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)  # in place: the network's own array


# %% exercise: cosine
def cosine_decay(t, lr, total_steps, min_lr=0.0):
    t = min(t, total_steps)  # held at min_lr after total_steps
    return min_lr + (lr - min_lr) * (1 + np.cos(np.pi * t / total_steps)) / 2


# %% exercise: grid_search
def grid_search(space, score):
    """Every combination of space's values -> list of {**point, "val_acc": score}, best first."""
    results = []
    for values in itertools.product(*space.values()):
        point = dict(zip(space, values))
        results.append({**point, "val_acc": score(**point)})
    return sorted(results, key=lambda r: r["val_acc"], reverse=True)


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
    """x (N, C, H, W) -> cols (C * k * k, N * Ho * Wo): one column per output position, as in notebook 05."""
    k, s, p = kernel_size, stride, padding
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    n, c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    cols = np.empty((c, k, k, n, ho, wo))
    for i in range(ho):
        for j in range(wo):
            cols[:, :, :, :, i, j] = x[:, :, i * s:i * s + k, j * s:j * s + k].transpose(1, 2, 3, 0)
    return cols.reshape(c * k * k, n * ho * wo)


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
        self.cols = im2col(x, self.k, self.stride, self.padding)  # (C*k*k, N*Ho*Wo)
        out = self.params["W"].reshape(f, -1) @ self.cols + self.params["b"][:, None]  # (F, N*Ho*Wo)
        return out.reshape(f, n, ho, wo).transpose(1, 0, 2, 3)

    def backward(self, dout):
        f = dout.shape[1]
        d = dout.transpose(1, 0, 2, 3).reshape(f, -1)  # (F, N*Ho*Wo), columns in the order of cols
        self.grads["W"][...] = (d @ self.cols.T).reshape(self.params["W"].shape)
        self.grads["b"][...] = d.sum(axis=1)
        dcols = self.params["W"].reshape(f, -1).T @ d
        return col2im(dcols, self.x_shape, self.k, self.stride, self.padding)
