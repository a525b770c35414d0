"""The doctor, utils.teaching.doctor.diagnose: each finding triggers on a planted broken set-up, and a
healthy network (and a healthy history) gets "nothing wrong found"."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import pandas as pd
import pytest

from tests.teaching.clusters import C, D, gaussian_clusters
from utils.core.models import mlp
from utils.teaching.doctor import Diagnosis, diagnose
from utils.teaching.gradcheck import GRADCHECK_TOL


@pytest.fixture(scope="module")
def data():
    """Four Gaussian clusters in 30 dimensions, standardised: easy to learn, easy to overfit."""
    return gaussian_clusters()


def healthy(activation="relu", sizes=(32, 16)):
    return mlp([D, *sizes, C], activation, rng=0)


def problems(report):
    return [f.problem for f in report]


def test_a_healthy_network_gets_nothing_wrong_found_and_the_signals(data):
    for activation in ("relu", "sigmoid", "tanh"):
        report = diagnose(healthy(activation), *data)
        assert isinstance(report, Diagnosis) and report == [], str(report)
        assert str(report).startswith("nothing wrong found\nsignals: ")
        for signal in ("input_mean", "input_std", "loss", "chance_loss", "update_ratio_max", "overfit_steps"):
            assert signal in report.signals
        assert report.signals["chance_loss"] == pytest.approx(np.log(C))
    history = pd.DataFrame({"epoch": [1, 2, 3], "lr": 0.05, "train_loss": [1.0, 0.6, 0.5],
                            "val_loss": [0.9, 0.7, 0.6], "val_acc": [0.6, 0.7, 0.75]})
    assert diagnose(healthy(), *data, history=history) == []


def test_the_callers_model_is_left_alone(data):
    model = healthy()
    model.train()
    before = {k: v.copy() for k, v in model.params.items()}
    diagnose(model, *data)
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())
    assert model.training


def zeroed(model):
    for p in model.params.values():
        p[...] = 0
    return model


def scaled(model, factor):
    for name, p in model.params.items():
        if name.endswith(".W"):
            p *= factor
    return model


def with_bias(model, layer, value, unit=None):
    b = model.layers[layer].params["b"]
    b[...] = value if unit is None else 0
    if unit is not None:
        b[unit] = value
    return model


PLANTED = {
    "raw pixels": (lambda X, y: (healthy(), np.round((X - X.min()) / (X.max() - X.min()) * 255), y, {}),
                   "inputs are raw pixel values"),
    "unstandardised": (lambda X, y: (healthy(), X * 0.1 + 3, y, {}), "inputs are not standardised"),
    "zero init": (lambda X, y: (zeroed(healthy()), X, y, {}), "weights initialised to zero"),
    "huge weights": (lambda X, y: (scaled(healthy(), 10), X, y, {}), "the loss is far above chance"),
    "NaN weights": (lambda X, y: (scaled(healthy(), np.nan), X, y, {}), "the loss is NaN or inf"),
    "one class": (lambda X, y: (with_bias(healthy(), 4, 100.0, unit=2), X, y, {}),
                  "all predictions are the same class"),
    "dead relu": (lambda X, y: (with_bias(healthy(), 0, -100.0), X, y, {}), "dead ReLU units in layer 1"),
    "saturated sigmoid": (lambda X, y: (scaled(healthy("sigmoid"), 10), X, y, {}), "saturated Sigmoid units"),
    "saturated tanh": (lambda X, y: (scaled(healthy("tanh"), 10), X, y, {}), "saturated Tanh units"),
    "lr too high": (lambda X, y: (healthy(), X, y, {"lr": 20.0}), "the learning rate is too high"),
    "lr too low": (lambda X, y: (healthy(), X, y, {"lr": 1e-7}), "the learning rate is too low"),
    "bottleneck": (lambda X, y: (healthy(sizes=(1,)), X, y, {}), "the network cannot overfit one small batch"),
    "NaN history": (lambda X, y: (healthy(), X, y, {"history": pd.DataFrame(
        {"lr": 0.05, "train_loss": [1.0, np.nan], "val_loss": [1.0, np.nan], "val_acc": [0.5, 0.25]})}),
        "the loss became NaN during training"),
    "exploding history": (lambda X, y: (healthy(), X, y, {"history": pd.DataFrame(
        {"lr": 0.05, "train_loss": [1.0, 0.8, 3.0], "val_loss": [1.0, 0.9, 3.1], "val_acc": [0.5, 0.6, 0.55]})}),
        "the training loss is exploding"),
    "stuck history": (lambda X, y: (healthy(), X, y, {"history": pd.DataFrame(
        {"lr": 0.05, "train_loss": [1.39, 1.38, 1.38], "val_loss": [1.39, 1.39, 1.39],
         "val_acc": [0.25, 0.26, 0.25]})}),
        "validation accuracy is stuck at chance"),
}


@pytest.mark.parametrize("name", PLANTED)
def test_each_finding_triggers_on_its_planted_problem(name, data):
    make, problem = PLANTED[name]
    model, X, y, kwargs = make(*data)
    report = diagnose(model, X, y, **kwargs)
    assert any(p.startswith(problem) for p in problems(report)), f"{name}: {problems(report)}"
    finding = next(f for f in report if f.problem.startswith(problem))
    assert finding.measured and finding.why and finding.fix and finding.severity in (1, 2, 3)
    assert str(report).splitlines()[0].startswith("1. ")


def test_findings_are_ranked_root_cause_first(data):
    report = diagnose(zeroed(healthy()), *data)
    assert problems(report)[:2] == ["weights initialised to zero", "the network cannot overfit one small batch"]
    assert [f.severity for f in report] == sorted((f.severity for f in report), reverse=True)
    X, y = data
    report = diagnose(healthy(), np.round((X - X.min()) / (X.max() - X.min()) * 255), y)
    assert problems(report)[0] == "inputs are raw pixel values"


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"diagnose: expected X with N > 0 rows"):
        diagnose(healthy(), np.zeros((3, D)), np.zeros(2, dtype=int))


# ---------------------------------------------------------------- the sanity checks (utils/teaching/sanity.py)

def test_initial_loss_is_ln_c_when_the_logits_are_equal(data):
    from utils.teaching.sanity import initial_loss, zero_weights
    result = initial_loss(zero_weights(healthy()), *data)
    assert result.loss == pytest.approx(np.log(C)) and result.chance == pytest.approx(np.log(C))
    assert "ln(K) = 1.386" in str(result) and "no class preferred yet" in str(result)
    large = initial_loss(healthy(), data[0] * 30, data[1])  # inputs far too large: large logits
    assert large.loss > 1.5 * np.log(C) and "prefer some classes" in str(large) and "no class" not in str(large)


def test_network_gradient_check_passes_and_sees_a_wrong_l2_gradient(data, monkeypatch):
    import utils.teaching.sanity
    from utils.core.optim import l2_regularize
    X, y = data
    model = mlp([D, 8, C], dropout=0.5, rng=0)  # dropout is switched off by the check
    for lam in (0.0, 0.1):
        errors = utils.teaching.sanity.network_gradient_check(model, X[:5], y[:5], l2_lambda=lam)
        assert list(errors.parameter) == ["0.W", "0.b", "3.W", "3.b"] and errors.rel_error.max() < GRADCHECK_TOL, errors
    monkeypatch.setattr(utils.teaching.sanity, "l2_regularize", lambda net, lam: l2_regularize(net, 2 * lam))
    errors = utils.teaching.sanity.network_gradient_check(model, X[:5], y[:5], l2_lambda=0.1).set_index("parameter")
    assert errors.loc["0.W", "rel_error"] > 1e-2 and errors.loc["0.b", "rel_error"] < GRADCHECK_TOL


def test_overfit_and_lr_range_test_leave_the_model_alone(data):
    from utils.teaching.sanity import lr_range_test, overfit_subset, plot_lr_range, suggest_lr
    model = healthy()
    before = {k: v.copy() for k, v in model.params.items()}
    fit = overfit_subset(model, *data, n=50, batch_size=10)
    assert fit.accuracy.iloc[-1] == 1.0 and len(fit) < 100
    table = lr_range_test(model, *data, batch_size=32, num_iters=200)
    assert len(table) < 200  # the loss blew up before lr_max: the test stopped
    assert table.lr.is_monotonic_increasing and table.lr.iloc[0] == pytest.approx(1e-5)
    suggested, at_minimum = suggest_lr(table)
    assert suggested == pytest.approx(at_minimum / 10) and 1e-4 < at_minimum < 10
    plt.close(plot_lr_range(table))
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())
