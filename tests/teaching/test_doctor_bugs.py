"""The doctor's checks for common student bugs (utils.teaching.findings), its update-to-weight
ratio from one real optimiser step, findings marked as consequences of a root cause, and a
printout that says it measured a sample."""
import copy

import numpy as np
import pandas as pd
import pytest

from tests.teaching.clusters import C, D, gaussian_clusters
from utils.core.models import mlp
from utils.core.optim import SGD, Adam
from utils.teaching.doctor import DOCTOR, diagnose


@pytest.fixture(scope="module")
def data():
    """Four Gaussian clusters in 30 dimensions, standardised, in random order: 300 to train on, 100 to check."""
    X, y = gaussian_clusters()
    return X[:300], y[:300], X[300:], y[300:]


def healthy(dropout=0.0):
    return mlp([D, 32, 16, C], "relu", dropout=dropout, rng=0).eval()


HEALTHY_HISTORY = pd.DataFrame({"epoch": [1, 2, 3], "lr": 0.05, "train_loss": [1.0, 0.6, 0.5],
                                "val_loss": [0.9, 0.7, 0.6], "val_acc": [0.6, 0.7, 0.75]})


def problems(report):
    return [f.problem for f in report]


def test_a_healthy_run_gets_none_of_the_student_bug_findings(data):
    X_train, y_train, X_val, y_val = data
    model = healthy(dropout=0.5)
    report = diagnose(model, X_val, y_val, history=HEALTHY_HISTORY, X_train=X_train, y_train=y_train,
                      predict=model.predict, optimizer=SGD(0.05, momentum=0.5))
    assert report == [], str(report)
    assert report.signals["overlap_with_train"] == 0 and report.signals["same_label_neighbours"] < 0.5


PLANTED = {
    "evaluated in train mode": (lambda m: {"predict": lambda X: m.train().forward(X)},
                                "the model is evaluated in train mode"),
    "validation = training": (lambda m: {"overlap": True}, "the checked images overlap the training set"),
    "sorted labels": (lambda m: {"sorted": True}, "the training labels are in sorted order"),
    "plateau": (lambda m: {"history": HEALTHY_HISTORY.assign(train_loss=[1.39, 1.385, 1.384])},
                "the training loss is on a plateau"),
}


@pytest.mark.parametrize("name", PLANTED)
def test_each_student_bug_is_named(name, data):
    X_train, y_train, X_val, y_val = data
    model = healthy(dropout=0.5)
    make, problem = PLANTED[name]
    kwargs = make(model)
    X_check, y_check = (X_train[:100], y_train[:100]) if kwargs.pop("overlap", False) else (X_val, y_val)
    if kwargs.pop("sorted", False):
        order = np.argsort(y_train, kind="stable")
        X_train, y_train = X_train[order], y_train[order]
    report = diagnose(model, X_check, y_check, X_train=X_train, y_train=y_train, **kwargs)
    assert len(report) == 1 and report[0].problem.startswith(problem), str(report)
    assert report[0].measured and report[0].why and report[0].fix and report[0].severity == 2


def test_the_update_ratio_is_one_real_step_with_momentum_and_adam(data):
    _, _, X, y = data
    plain = diagnose(healthy(), X, y, optimizer=SGD(0.05)).signals["update_ratio"]
    assert plain == pytest.approx(diagnose(healthy(), X, y, lr=0.05).signals["update_ratio"])
    # From zero velocity the first step equals plain SGD's; the steady step is 1/(1 - momentum) larger.
    assert diagnose(healthy(), X, y, optimizer=SGD(0.05, momentum=0.9)).signals["update_ratio"] == \
        pytest.approx(10 * plain, rel=1e-4)
    # Adam's first step moves every weight by about lr, whatever the gradient's size.
    W = healthy().params["2.W"]
    adam = diagnose(healthy(), X, y, optimizer=Adam(1e-3)).signals["update_ratio"]
    assert adam == pytest.approx(1e-3 * np.sqrt(W.size) / np.linalg.norm(W), rel=0.2)


def test_an_optimiser_with_state_takes_its_real_step_and_is_left_alone(data):
    _, _, X, y = data
    opt = SGD(0.05, momentum=0.9)
    opt.slots["velocity"] = {name: np.full_like(p, 0.01) for name, p in healthy().params.items()}
    before = copy.deepcopy(opt.slots)
    diagnose(healthy(), X, y, optimizer=opt)
    assert all(np.array_equal(before["velocity"][k], v) for k, v in opt.slots["velocity"].items())


def test_the_fix_aims_at_the_band_the_judgement_uses(data):
    _, _, X, y = data
    report = diagnose(healthy(), X, y, optimizer=SGD(20.0))
    finding = next(f for f in report if f.problem == "the learning rate is too high")
    ratio = report.signals["update_ratio"]
    assert ratio > DOCTOR["ratio_high"]
    assert f"divide the learning rate by {ratio / DOCTOR['ratio_high']:.3g} or more" in finding.fix
    assert f"by {ratio / DOCTOR['ratio_target']:.3g} for the target 0.001" in finding.fix
    assert f"healthy: {DOCTOR['ratio_low']:g}..{DOCTOR['ratio_high']:g}" in finding.measured


def test_consequences_of_the_root_cause_are_marked_not_cured(data):
    _, _, X, y = data
    pixels = np.round((X - X.min()) / (X.max() - X.min()) * 255)
    report = diagnose(healthy(), pixels, y, optimizer=SGD(0.05))
    assert report[0].problem == "inputs are raw pixel values" and not report[0].caused_by
    high = next(f for f in report if f.problem == "the learning rate is too high")
    assert high.caused_by == 1 and high.fix.startswith("fix #1 first")
    assert "the learning rate is too high (probably caused by #1)" in str(report)
    model = healthy()
    for p in model.params.values():
        p[...] = 0
    report = diagnose(model, X, y)
    assert report[0].problem == "weights initialised to zero"
    assert all(f.caused_by == 1 for f in report[1:]) and len(report) > 1
    dead = [f for f in report if f.problem.startswith("dead ReLU")]
    assert dead and all(f.fix.startswith("fix #1 first") for f in dead)  # not "LeakyReLU" as the cure


def test_the_printout_says_it_measured_a_sample(data):
    _, _, X, y = data
    report = str(diagnose(healthy(), np.concatenate([X] * 12), np.concatenate([y] * 12), seed=3))
    assert "measured on a random 1,000 of the 1,200 images (seed 3)" in report
    assert "not the full set's" in report


def test_inputs_in_0_1_are_a_mild_note_and_far_off_inputs_are_not(data):
    _, _, X, y = data
    scaled = np.clip(X * 0.35 + 0.29, 0, 1)  # like Fashion-MNIST scaled to [0, 1]: mean ~0.29, std ~0.35
    note = next(f for f in diagnose(healthy(), scaled, y) if f.problem == "inputs are not standardised")
    assert note.severity == 1 and "train fine" in note.why
    far = next(f for f in diagnose(healthy(), X * 0.1 + 3, y) if f.problem == "inputs are not standardised")
    assert far.severity == 2


def test_messages_say_k_classes_and_that_dead_units_can_revive(data):
    _, _, X, y = data
    model = healthy()
    for name, p in model.params.items():
        if name.endswith(".W"):
            p *= 10
    far = next(f for f in diagnose(model, X, y) if f.problem == "the loss is far above chance")
    assert "ln(K) = ln(4)" in far.measured and "He-initialised output layer" in far.why
    model = healthy()
    model.layers[0].params["b"][...] = -100.0
    dead = next(f for f in diagnose(model, X, y) if f.problem.startswith("dead ReLU"))
    assert "never comes back" not in dead.why and "can revive" in dead.why
