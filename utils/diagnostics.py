"""Signals that tell why a network does or does not learn, read from the layers' cached state.

* ``activation_stats(model, X)``: per activation layer, the share of saturated activations
  and of dead units (flat for every input), after one forward pass;
* ``TrainingMonitor``: a ``train(..., callback=...)`` callback that records, after every
  epoch, a sample of each weight matrix (for histograms), the update-to-weight ratio
  ||W_e - W_(e-1)|| / ||W_(e-1)|| and the activation stats on a fixed probe batch.
"""
import numpy as np
import pandas as pd

from module import ACTIVATIONS, Activation, LeakyReLU, Linear, ReLU, Sigmoid, Tanh, evaluating

# A unit is "flat" where its local derivative is below this share of the activation's
# largest derivative: |tanh| > 0.97 (Karpathy's rule of thumb), sigmoid < 0.015 or > 0.985,
# ReLU at 0. Gradients through a flat unit are scaled by < 6%, so it barely learns.
FLAT = 0.06


def relative_slope(layer):
    """The activation's derivative at its last input (its local_grad()), divided by its largest one.

    layer: an activation layer after a forward pass. Returns an array shaped like layer.out.
    """
    if isinstance(layer, Activation):
        return (layer.local_grad() / layer.max_slope).astype(layer.out.dtype, copy=False)
    raise ValueError(f"relative_slope: expected an activation layer ({', '.join(c.__name__ for c in ACTIVATIONS.values())}), "
                     f"got {layer!r}")


def activation_stats(model, X):
    """Health of every activation layer of model on the inputs X (N, features), in eval mode.

    Returns a DataFrame with one row per activation layer: layer (its index in the model),
    kind, saturated (share of the N x units activations that are flat), dead (share of
    units flat for every one of the N inputs), mean and std of the activations.
    """
    if not isinstance(X, np.ndarray) or X.ndim != 2 or len(X) == 0:
        raise ValueError(f"activation_stats: expected X of shape (N, features) with N > 0, "
                         f"got {getattr(X, 'shape', type(X).__name__)}")
    with evaluating(model):
        model.forward(X)
    rows = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, tuple(ACTIVATIONS.values())):
            flat = relative_slope(layer) < FLAT
            rows.append({"layer": i, "kind": type(layer).__name__, "saturated": float(flat.mean()),
                         "dead": float(flat.all(axis=0).mean()),
                         "mean": float(layer.out.mean()), "std": float(layer.out.std())})
    return pd.DataFrame(rows, columns=["layer", "kind", "saturated", "dead", "mean", "std"])


def linear_layers(model):
    """[(index, layer)] of the model's Linear layers, in order."""
    return [(i, layer) for i, layer in enumerate(model.layers) if isinstance(layer, Linear)]


class TrainingMonitor:
    """Callback for utils.train.train that records weight and activation diagnostics per epoch.

    monitor = TrainingMonitor(model, X_probe)     # records epoch 0, the initial state
    train(model, ..., callback=monitor)           # records epochs 1, 2, ...

    X_probe: (N, features), a fixed batch (e.g. validation images) for activation_stats.
    sample_size: at most this many weights per layer are kept per epoch (a fixed random
    subset, chosen with seed), enough for a histogram without keeping every copy.
    Attributes after training:
    - ratios: DataFrame, one row per epoch >= 1: epoch, layer, ratio = ||W_e - W_(e-1)|| / ||W_(e-1)||
    - activations: DataFrame of activation_stats per epoch (epoch column added)
    - samples: {layer index: list of 1-D weight samples, one per recorded epoch}
    """

    def __init__(self, model, X_probe, sample_size=20000, seed=0):
        rng = np.random.default_rng(seed)
        self.X_probe = X_probe
        self.epochs, self.samples, self._subset, self._previous = [], {}, {}, {}
        self._ratios, self._activations = [], []
        for i, layer in linear_layers(model):
            size = layer.params["W"].size
            self._subset[i] = np.sort(rng.choice(size, sample_size, replace=False)) if size > sample_size else None
            self.samples[i] = []
        self._record(0, model)

    def __call__(self, history, model):
        self._record(int(history["epoch"].iloc[-1]), model)

    def _record(self, epoch, model):
        self.epochs.append(epoch)
        for i, layer in linear_layers(model):
            W = layer.params["W"]
            flat = W.ravel()
            self.samples[i].append(flat.copy() if self._subset[i] is None else flat[self._subset[i]])
            if i in self._previous:
                before = self._previous[i]
                self._ratios.append({"epoch": epoch, "layer": i,
                                     "ratio": float(np.linalg.norm(W - before) / np.linalg.norm(before))})
            self._previous[i] = W.copy()
        self._activations.append(activation_stats(model, self.X_probe).assign(epoch=epoch))

    @property
    def ratios(self):
        return pd.DataFrame(self._ratios, columns=["epoch", "layer", "ratio"])

    @property
    def activations(self):
        return pd.concat(self._activations, ignore_index=True)

    def weight_histograms(self, layer, bins=61):
        """Histograms of one layer's weights, one per recorded epoch, on common bin edges.

        Returns (epochs, edges, counts): epochs (E,), edges (bins + 1,) symmetric around 0,
        counts (E, bins) as the share of the sampled weights in each bin.
        """
        if layer not in self.samples:
            raise ValueError(f"layer {layer} is not a Linear layer; Linear layers: {sorted(self.samples)}")
        samples = self.samples[layer]
        limit = max(float(np.abs(s).max()) for s in samples)
        edges = np.linspace(-limit, limit, bins + 1)
        counts = np.stack([np.histogram(s, edges)[0] / len(s) for s in samples])
        return np.array(self.epochs), edges, counts
