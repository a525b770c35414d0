"""The training loop: learning on real data, best-weight saving, resume, divergence and bad settings."""
import shutil

import numpy as np
import pandas as pd
import pytest

from utils.core.checkpoint import load_model
from utils.core.models import mlp
from utils.core.train import DEFAULTS, TrainingDiverged, evaluate, hyperparameters, train
from utils.plumbing import config
from utils.plumbing.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def small_fashion(fashion_raw):
    """3,000 training and 1,000 validation images of the real Fashion-MNIST, scaled to [0, 1]."""
    X, y = fashion_raw
    X = X.reshape(len(X), -1).astype(np.float32) / np.float32(255)
    return X[:3000], y[:3000], X[3000:4000], y[3000:4000]


@pytest.fixture
def toy():
    """A linearly separable 3-class problem, small enough for many quick runs."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 10)).astype(np.float32)
    y = (X @ rng.standard_normal((10, 3))).argmax(axis=1)
    return X[:400], y[:400], X[400:], y[400:]


def test_learns_fashion_mnist_far_above_chance(small_fashion, tmp_path):
    model = mlp([784, 128, 10], rng=0)
    history = train(model, *small_fashion, num_epochs=4, lr=0.05, l2_lambda=1e-3, progress=False,
                    checkpoint_path=tmp_path / "best.npz")
    assert list(history.columns) == ["epoch", "lr", "train_loss", "train_total_loss", "train_acc",
                                     "val_loss", "val_acc", "seconds"]
    assert history.val_acc.max() > 0.75
    assert history.train_loss.iloc[-1] < history.train_loss.iloc[0]
    assert (history.train_total_loss > history.train_loss).all()  # the L2 penalty is on top


def test_best_weights_saved_and_restored(toy, tmp_path):
    model = mlp([10, 16, 3], rng=0)
    seen = []
    history = train(model, *toy, num_epochs=6, lr=0.5, momentum=0.0, lr_schedule="constant", progress=False,
                    checkpoint_path=tmp_path / "best.npz", callback=lambda h, m: seen.append(len(h)))
    assert seen == [1, 2, 3, 4, 5, 6]
    best = history.val_acc.idxmax()
    saved, meta = load_model(tmp_path / "best.npz")
    assert meta["epoch"] == history.epoch[best]
    assert meta["metrics"]["val_acc"] == pytest.approx(history.val_acc[best])
    assert meta["hyperparameters"]["lr"] == 0.5
    X_val, y_val = toy[2], toy[3]
    assert evaluate(saved, X_val, y_val)[1] == pytest.approx(history.val_acc[best])
    assert np.array_equal(model.predict(X_val), saved.predict(X_val))  # restore_best=True


def test_same_seed_same_history(toy):
    runs = [train(mlp([10, 8, 3], rng=1), *toy, num_epochs=2, seed=5, progress=False) for _ in range(2)]
    cols = ["train_loss", "val_loss", "val_acc"]
    pd.testing.assert_frame_equal(runs[0][cols], runs[1][cols])


def test_resume_continues_exactly(toy, tmp_path):
    settings = dict(lr=0.1, optimizer="adam", lr_schedule="step", progress=False,
                    checkpoint_path=tmp_path / "a" / "best.npz")
    straight = train(mlp([10, 8, 3], rng=1), *toy, num_epochs=5, **settings)
    settings["checkpoint_path"] = tmp_path / "b" / "best.npz"
    model = mlp([10, 8, 3], rng=1)
    train(model, *toy, num_epochs=3, **settings)  # as if the kernel died after epoch 3
    resumed = train(mlp([10, 8, 3], rng=99), *toy, num_epochs=5, resume=True, **settings)
    assert list(resumed.epoch) == [1, 2, 3, 4, 5]
    cols = ["train_loss", "val_loss", "val_acc"]
    pd.testing.assert_frame_equal(straight[cols], resumed[cols])


def test_resume_refuses_other_hyperparameters(toy, tmp_path):
    train(mlp([10, 8, 3], rng=1), *toy, num_epochs=1, progress=False, checkpoint_path=tmp_path / "best.npz")
    with pytest.raises(ValueError, match="other hyperparameters"):
        train(mlp([10, 8, 3], rng=1), *toy, num_epochs=2, lr=0.3, progress=False, resume=True,
              checkpoint_path=tmp_path / "best.npz")


def test_resume_refuses_another_length_under_the_cosine_schedule(toy, tmp_path):
    """The cosine schedule is stretched over num_epochs: another length would change the finished epochs."""
    settings = dict(lr_schedule="cosine", progress=False, checkpoint_path=tmp_path / "best.npz")
    train(mlp([10, 8, 3], rng=1), *toy, num_epochs=2, **settings)
    with pytest.raises(CheckpointError, match="num_epochs 2; the cosine schedule"):
        train(mlp([10, 8, 3], rng=1), *toy, num_epochs=4, resume=True, **settings)


def test_early_stopping(toy):
    history = train(mlp([10, 8, 3], rng=1), *toy, num_epochs=50, patience=2, lr=0.001, momentum=0.0,
                    lr_schedule="step", decay_factor=0.01, decay_steps=1, progress=False)
    assert len(history) == 3  # the lr is ~0 after one step: nothing improves after epoch 1


def test_divergence_stops_with_advice_and_keeps_best(toy, tmp_path):
    path = tmp_path / "best.npz"
    train(mlp([10, 8, 3], rng=1), *toy, num_epochs=2, progress=False, checkpoint_path=path)
    before = path.read_bytes()
    with pytest.raises(TrainingDiverged, match="lower learning rate"):
        train(mlp([10, 8, 3], rng=1), toy[0] * 1e6, *toy[1:], num_epochs=5, lr=1000, progress=False,
              checkpoint_path=path)
    assert path.read_bytes() == before


def test_float64_data_is_converted_once(toy):
    X, y, X_val, y_val = toy
    model = mlp([10, 8, 3], rng=1)
    train(model, X.astype(np.float64), y, X_val, y_val, num_epochs=1, progress=False)
    assert all(p.dtype == np.float32 for p in model.params.values())


@pytest.mark.parametrize("settings, message", [
    ({"lr": -0.1}, r"lr = -0.1: expected a number in \(0, 1000\]"),
    ({"lr": "0.1"}, r"lr = '0.1': expected a number"),
    ({"lr": None}, "lr = None: expected a number"),
    ({"lr": np.array([0.1, 0.2])}, "lr = array.*expected a number"),
    ({"lr": float("inf")}, "lr = inf: expected a number"),
    ({"batch_size": 0}, r"batch_size = 0: expected an integer in \[1, "),
    ({"batch_size": True}, "batch_size = True: expected an integer"),
    ({"num_epochs": 2.5}, "num_epochs = 2.5: expected an integer"),
    ({"optimizer": "rmsprop"}, "optimizer = 'rmsprop': expected one of 'sgd', 'adam'"),
    ({"learning_rate": 0.1}, "unknown hyperparameter 'learning_rate'"),
    ({"lr_schedule": "warmup"}, "lr_schedule = 'warmup': expected one of 'constant'"),
    ({"l2": 0.1}, "did you mean 'l2_lambda'"),
    ({"l2_lambda": float("inf")}, "l2_lambda = inf: expected a number in"),
    ({"decay_steps": float("nan")}, "decay_steps = nan: expected an integer"),
    ({"decay_steps": float("inf")}, "decay_steps = inf: expected an integer"),
    ({"nesterov": "no"}, "nesterov = 'no': expected true or false"),
    ({"nesterov": True, "momentum": 0.0}, 'nesterov = true needs optimizer = "sgd" and momentum > 0'),
    ({"seed": -1}, "seed = -1: expected an integer"),
    ({"seed": "0"}, "seed = '0': expected an integer"),
    ({"momentum": 1.0}, r"momentum = 1.0: expected a number in \[0, 1\)"),
    ({"patience": -1}, "patience = -1: expected an integer"),
])
def test_bad_hyperparameters_fail_before_work(settings, message, toy):
    with pytest.raises(ConfigError, match=message):
        train(mlp([10, 8, 3], rng=1), *toy, progress=False, **settings)


@pytest.mark.parametrize("X, y, message", [
    (np.ones((5, 10), np.float32), np.zeros(4, int), "labels of shape"),
    (np.ones((5, 10), np.float32), np.zeros(5), "labels must be integers"),
    (np.full((5, 10), np.nan, np.float32), np.zeros(5, int), "NaN or inf"),
    (np.ones((5, 11), np.float32), np.zeros(5, int), r"Linear.*\(N, 10\).*\(128, 11\)|\(5, 11\)"),
])
def test_bad_data(X, y, message, toy):
    with pytest.raises(ValueError, match=message):
        train(mlp([10, 8, 3], rng=1), X, y, *toy[2:], num_epochs=1, progress=False)


def test_defaults_are_the_textbook_ones_in_code_and_no_config_file_changes_them(toy, tmp_path, monkeypatch):
    assert hyperparameters() == DEFAULTS
    assert DEFAULTS["optimizer"] == "sgd" and DEFAULTS["momentum"] == 0 and DEFAULTS["lr_schedule"] == "constant"
    assert DEFAULTS["l2_lambda"] == 0
    assert hyperparameters(patience=None)["patience"] == 0  # None: early stopping off, as before

    def run():
        return train(mlp([10, 8, 3], rng=1), *toy, lr=0.1, num_epochs=1, progress=False)

    before = run()
    edited = tmp_path / "configs"
    shutil.copytree(config.CONFIG_DIR, edited)
    text = (edited / "mlp_fashion.toml").read_text()
    (edited / "mlp_fashion.toml").write_text(text.replace("momentum = 0.9", "momentum = 0.5")
                                             .replace('lr_schedule = "cosine"', 'lr_schedule = "step"'))
    monkeypatch.setattr(config, "CONFIG_DIR", edited)
    assert config.load_config("mlp_fashion")["train"]["momentum"] == 0.5  # the edit is seen by the loader ...
    after = run()                                                        # ... and not by train()
    pd.testing.assert_frame_equal(before.drop(columns="seconds"), after.drop(columns="seconds"))


def test_values_beyond_float32_are_refused_as_data_not_blamed_on_the_lr(toy):
    X, y, X_val, y_val = toy
    X = X.astype(np.float64)
    X[0, 0] = 1e39  # finite in float64, inf in float32
    with pytest.raises(ValueError, match=r"training data \(as float32\).*NaN or inf"):
        train(mlp([10, 8, 3], rng=1), X, y, X_val, y_val, num_epochs=1, progress=False)


def _resume_file(toy, tmp_path):
    path = tmp_path / "best.npz"
    train(mlp([10, 8, 3], rng=1), *toy, num_epochs=2, progress=False, checkpoint_path=path)
    return path, path.with_name("best.last.npz")


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(history=m["history"] * 5), "holds 10 epochs but num_epochs is 2"),
    (lambda m: m.update(history=[{"epoch": 7}, {"epoch": 1}]), "not one row per epoch"),
    (lambda m: m.pop("rng"), "'rng' is missing"),
    (lambda m: m.update(rng={"bit_generator": "nonsense"}), "bad generator or optimiser state"),
    (lambda m: m.update(best_epoch=9), "best_epoch 9 is outside"),
    (lambda m: m.update(history="abc"), "'history' is missing or not a list"),
])
def test_a_tampered_resume_file_is_refused_before_anything_changes(change, message, toy, tmp_path):
    from utils.core.checkpoint import load_arrays, save_arrays
    _, last = _resume_file(toy, tmp_path)
    arrays, meta = load_arrays(last)
    change(meta)
    meta.pop("format_version")
    save_arrays(last, arrays, meta)
    model = mlp([10, 8, 3], rng=3)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(CheckpointError, match=message):
        train(model, *toy, num_epochs=2, progress=False, resume=True, checkpoint_path=tmp_path / "best.npz")
    assert all(np.array_equal(before[k], v) for k, v in model.params.items())


def test_numpy_numbers_are_valid_hyperparameters():
    """A seed from np.arange or an lr from np.logspace works as before; NumPy's bools too, and stay bools."""
    hp = hyperparameters(seed=np.int64(3), lr=np.float64(0.01), batch_size=np.int32(64), momentum=np.float32(0.5),
                         nesterov=np.bool_(True))
    assert (hp["seed"], hp["lr"], hp["batch_size"], hp["nesterov"]) == (3, 0.01, 64, True)
    assert type(hp["seed"]) is int and type(hp["lr"]) is float and type(hp["nesterov"]) is bool


@pytest.mark.parametrize("checkpoint, error, words", [
    ("best.npz", FileNotFoundError, ["nothing to resume from", "best.last.npz", "resume=False"]),
    (None, ValueError, ["resume=True needs checkpoint_path"]),
])
def test_resume_with_nothing_to_resume_from_refuses_and_keeps_the_checkpoint(checkpoint, error, words, toy, tmp_path):
    (tmp_path / "best.npz").write_bytes(b"an earlier run's best weights")
    path = None if checkpoint is None else tmp_path / checkpoint
    with pytest.raises(error) as e:
        train(mlp([10, 8, 3], rng=1), *toy, num_epochs=1, progress=False, resume=True, checkpoint_path=path)
    for w in words:
        assert w in str(e.value)
    assert (tmp_path / "best.npz").read_bytes() == b"an earlier run's best weights"
