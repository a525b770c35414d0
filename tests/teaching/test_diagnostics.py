"""Diagnostics: dead and saturated units, update-to-weight ratios, weight histograms per epoch."""
import numpy as np
import pytest

from module import Dropout, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from utils.core.models import Sequential, mlp
from utils.core.train import train
from utils.teaching.doctor import TrainingMonitor, activation_stats, relative_slope


def fixed_linear(n_in, bias):
    """A Linear layer with zero weights: every output unit equals its bias, whatever the input."""
    layer = Linear(n_in, len(bias), dtype=np.float64)
    layer.params["W"][...] = 0
    layer.params["b"][...] = bias
    return layer


def test_relative_slope_is_one_at_the_steepest_point_and_small_when_flat():
    z = np.array([[-10.0, 0.0, 10.0]])
    for layer, expected in ((ReLU(), [0, 0, 1]), (Sigmoid(), [0, 1, 0]), (Tanh(), [0, 1, 0])):
        layer.forward(z)
        np.testing.assert_allclose(relative_slope(layer), [expected], atol=2e-4)
    with pytest.raises(ValueError, match="activation layer"):
        relative_slope(Dropout(0.5))


def test_dead_relu_units_are_counted_per_unit_and_flat_activations_per_value():
    # Units 0 and 2 have a negative bias and no weights: zero for every input, i.e. dead.
    # Unit 3 depends on the input's sign: flat for half of the inputs, but not dead.
    first = fixed_linear(2, [-1.0, 1.0, -1.0, 0.0])
    first.params["W"][0, 3] = 1.0
    model = Sequential([first, ReLU(), Dropout(0.5, rng=0), fixed_linear(4, [0.0, 0.0])])
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 5.0], [-2.0, 5.0]])
    stats = activation_stats(model, X)
    assert stats["layer"].tolist() == [1]  # Dropout is not an activation
    assert stats["kind"].tolist() == ["ReLU"]
    assert stats["dead"].iloc[0] == pytest.approx(2 / 4)
    assert stats["saturated"].iloc[0] == pytest.approx((4 + 4 + 2) / 16)
    assert model.training and model.layers[2].training  # the mode is restored


def test_saturated_sigmoid_and_tanh_units():
    model = Sequential([fixed_linear(3, [8.0, 0.0, -8.0]), Sigmoid(), fixed_linear(3, [0.0, 3.0]), Tanh()])
    stats = activation_stats(model, np.ones((5, 3))).set_index("kind")
    assert stats.loc["Sigmoid", "saturated"] == pytest.approx(2 / 3)
    assert stats.loc["Sigmoid", "dead"] == pytest.approx(2 / 3)
    assert stats.loc["Tanh", "saturated"] == pytest.approx(1 / 2)


def test_activation_stats_rejects_images_that_are_not_flat():
    with pytest.raises(ValueError, match=r"\(N, features\)"):
        activation_stats(mlp([4, 3, 2], rng=0), np.zeros((2, 2, 2)))


def test_monitor_records_the_initial_state_and_exact_update_ratios():
    model = mlp([6, 5, 3], rng=0)
    X = np.random.default_rng(1).standard_normal((8, 6)).astype(np.float32)
    monitor = TrainingMonitor(model, X, sample_size=20, seed=0)
    before = {i: model.layers[i].params["W"].copy() for i in (0, 2)}
    model.layers[0].params["W"] *= 1.5  # pretend an epoch changed the first layer only
    monitor(_history(epoch=1), model)
    ratios = monitor.ratios.set_index("layer")["ratio"]
    assert ratios[0] == pytest.approx(0.5, rel=1e-6)  # ||1.5 W - W|| / ||W||
    assert ratios[2] == 0.0
    assert monitor.epochs == [0, 1]
    assert monitor.activations["epoch"].tolist() == [0, 1]
    # Layer 0 has 30 weights, more than sample_size: the same 20 positions every epoch.
    first, second = monitor.samples[0]
    assert len(first) == 20 and np.allclose(second, 1.5 * first)
    assert np.array_equal(monitor.samples[2][0], before[2].ravel())  # 15 weights: all kept


def test_weight_histograms_share_edges_across_epochs_and_sum_to_one():
    model = mlp([6, 5, 3], rng=0)
    monitor = TrainingMonitor(model, np.zeros((2, 6), dtype=np.float32))
    model.layers[2].params["W"] *= 3
    monitor(_history(epoch=1), model)
    epochs, edges, counts = monitor.weight_histograms(2, bins=11)
    assert epochs.tolist() == [0, 1]
    assert edges[0] == -edges[-1] == -np.abs(model.layers[2].params["W"]).max()
    assert counts.shape == (2, 11)
    np.testing.assert_allclose(counts.sum(axis=1), 1.0)
    assert counts[0, [0, -1]].sum() == 0  # the initial weights are a third as wide: no extreme bins
    with pytest.raises(ValueError, match="not a Linear layer"):
        monitor.weight_histograms(1)


def test_monitor_as_the_training_callback():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = mlp([8, 16, 2], rng=0)
    monitor = TrainingMonitor(model, X[:50])
    train(model, X, y, X[:50], y[:50], num_epochs=3, lr=0.1, progress=False, callback=monitor)
    assert monitor.epochs == [0, 1, 2, 3]
    assert len(monitor.ratios) == 3 * 2  # epochs 1-3 x two Linear layers
    assert (monitor.ratios["ratio"] > 0).all()


def _history(epoch):
    import pandas as pd
    return pd.DataFrame({"epoch": [epoch]})


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(0.1), Sigmoid(), Tanh()], ids=lambda layer: type(layer).__name__)
def test_relative_slope_is_the_layers_own_derivative_scaled_to_one(layer):
    """One derivative per activation: the diagnostics read the local_grad that backward uses."""
    z = np.linspace(-6, 6, 13, dtype=np.float32)[None]
    layer.forward(z)
    slope = relative_slope(layer)
    assert slope.dtype == np.float32 and slope.shape == z.shape
    np.testing.assert_array_equal(slope, np.asarray(layer.local_grad() / layer.max_slope, np.float32))
    assert slope.max() == 1  # at x = 0 (or right of it), where each of these is steepest
    assert 0 <= slope.min() and slope.max() <= 1
    if isinstance(layer, LeakyReLU):
        assert slope[0, 0] == np.float32(0.1)  # the slope left of 0 is alpha, not 0
