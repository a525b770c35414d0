"""The playground (utils/figures/playground.py, playground_view.py, toy_data.py) and the Train panel (utils/figures/panel.py).

The widgets are built without a browser here (their values are plain traits); the browser
test (test_browser.py) checks that they render and talk to the kernel.
"""
import asyncio
import time

import numpy as np
import pytest

from module import Dropout, Linear
from tests.figures.widget_counts import count_widgets
from utils.core.optim import SGD, Adam
from utils.figures.panel import hyperparameter_sliders, slider_values, training_panel
from utils.figures.playground import Playground
from utils.figures.playground_view import inactive
from utils.figures.toy_data import TOY_SETS, make_toy


@pytest.mark.parametrize("name", TOY_SETS)
def test_toy_sets_are_seeded_split_and_balanced(name):
    d = make_toy(name, n=200, noise=0.1, val_share=0.25, rng=3)
    assert d["X_train"].shape == (150, 2) and d["X_val"].shape == (50, 2) and d["X_train"].dtype == np.float32
    assert set(np.unique(np.concatenate([d["y_train"], d["y_val"]]))) == {0, 1}
    assert abs(np.concatenate([d["y_train"], d["y_val"]]).mean() - 0.5) < 0.1
    again, other = make_toy(name, n=200, noise=0.1, val_share=0.25, rng=3), make_toy(name, n=200, noise=0.1, rng=4)
    assert np.array_equal(d["X_train"], again["X_train"]) and not np.array_equal(d["X_val"], other["X_val"][:50])


@pytest.mark.parametrize("kwargs, words", [({"name": "moons"}, "unknown toy data set 'moons'"),
                                           ({"noise": -0.1}, "noise must be in [0, 1]"),
                                           ({"val_share": 1.0}, "val_share must be in (0, 1)"),
                                           ({"n": 2}, "at least 4 points")])
def test_toy_data_errors_name_the_problem(kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        make_toy(**{"name": "xor", **kwargs})


def weights(pg):
    return [layer.params["W"].copy() for layer in pg.model.layers if isinstance(layer, Linear)]


def test_playground_learns_and_is_deterministic():
    a, b = Playground("gaussians", seed=1), Playground("gaussians", seed=1)
    a.run(epochs=5)
    b.run(epochs=5)
    assert a.history == b.history
    assert a.history[-1]["val_acc"] > 0.9 and a.history[-1]["train_loss"] < a.history[0]["train_loss"]
    assert a.sizes == [2, 8, 8, 2] and a.steps == 5 * 13  # 200 training points, batches of 16


def test_lr_keeps_the_weights_architecture_resets_them_and_archives_the_run():
    pg = Playground("xor")
    pg.run(epochs=3)
    before = weights(pg)
    pg.set(lr=0.3)
    assert all(np.array_equal(w, v) for w, v in zip(before, weights(pg))) and pg.epoch == 3
    pg.run(epochs=1)
    assert pg.optimizer.lr == 0.3 and pg.epoch == 4
    pg.set(hidden_layers=3)
    assert pg.epoch == 0 and pg.history == [] and pg.sizes == [2, 8, 8, 8, 2]
    assert len(pg.runs) == 1 and "2-8-8-2" in pg.runs[0][0] and len(pg.runs[0][1]) == 4
    pg.clear_runs()
    assert pg.runs == []


def test_dropout_and_optimiser_changes_keep_the_weights():
    pg = Playground("circles")
    pg.run(epochs=2)
    before = weights(pg)
    pg.set(dropout=0.3)
    assert sum(isinstance(layer, Dropout) for layer in pg.model.layers) == 2
    pg.set(dropout=0.0)
    assert not any(isinstance(layer, Dropout) for layer in pg.model.layers)
    velocity = {k: v.copy() for k, v in pg.optimizer.slots["velocity"].items()}
    pg.set(momentum=0.5)
    assert isinstance(pg.optimizer, SGD) and pg.optimizer.momentum == 0.5
    assert all(np.array_equal(v, pg.optimizer.slots["velocity"][k]) for k, v in velocity.items())
    pg.set(optimizer="adam", beta1=0.8)
    assert isinstance(pg.optimizer, Adam) and pg.optimizer.beta1 == 0.8
    assert all(np.array_equal(w, v) for w, v in zip(before, weights(pg)))


def test_inactive_controls_are_disabled_and_follow_changes():
    pg = Playground("spirals")
    c = pg.controls
    assert c["beta1"].disabled and not c["momentum"].disabled
    assert c["decay_factor"].disabled and c["decay_steps"].disabled
    pg.set(optimizer="adam")
    assert c["momentum"].disabled and c["nesterov"].disabled and not c["beta1"].disabled
    pg.set(lr_schedule="step")
    assert not c["decay_factor"].disabled and not c["decay_steps"].disabled
    pg.set(lr_schedule="cosine")
    assert c["decay_factor"].disabled and not c["decay_steps"].disabled
    pg.set(hidden_layers=0)
    assert c["units"].disabled and c["activation"].disabled
    assert "nesterov" in inactive({**pg.settings, "optimizer": "sgd", "momentum": 0})


def test_a_moved_widget_reaches_the_playground_and_code_moves_the_widget():
    pg = Playground("xor")
    pg.controls["lr"].value = 0.01
    assert pg.settings["lr"] == 0.01 and pg._schedule(0) == 0.01
    pg.controls["units"].value = 4
    assert pg.sizes == [2, 4, 4, 2]
    pg.set(batch_size=64, l2_lambda=0.02)  # 0.02 is not a slider position: it is added as one
    assert pg.controls["batch_size"].value == 64 and pg.controls["l2_lambda"].value == 0.02
    assert "lr 0.01" in pg.view.status.value


def test_unknown_setting_is_refused_and_a_new_data_set_resets():
    pg = Playground("xor")
    with pytest.raises(ValueError, match="unknown playground setting.*'learning_rate'"):
        pg.set(learning_rate=0.1)
    pg.run(epochs=1)
    pg.controls["dataset"].value = "circles"
    assert pg.settings["dataset"] == "circles" and pg.epoch == 0 and pg.runs[0][0].startswith("xor ")


def test_divergence_pauses_with_a_message():
    pg = Playground("gaussians", activation="relu", lr=3.0)
    pg.set(lr=1000, l2_lambda=1)  # the largest lr the config schema allows; the L2 step overshoots
    pg.run(epochs=3)
    assert "diverged" in pg.message and "lower the learning rate" in pg.message and not pg.running
    assert "diverged" in pg.view.status.value


def test_play_trains_in_the_background_and_pause_stops_it():
    pg = Playground("xor")
    pictures = []

    async def until(condition, seconds=60):  # however slow the machine, without a fixed wait
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def main():
        first = pg.view.picture.value
        task = pg.play()
        await until(lambda: pg.epoch >= 1)
        pg.set(lr=0.3)  # as a slider does while playing
        start = pg.epoch
        await until(lambda: pg.epoch > max(start, 2))
        pg.pause()
        await task
        pictures.append(first)
        return pg.epoch

    epochs = asyncio.run(main())
    assert epochs > 2 and not pg.running and pg.view.picture.value != pictures[0]
    assert pg.optimizer.lr == 0.3 and not pg.view.buttons["Play"].disabled


def test_figures_are_png_and_curves_are_blitted(tmp_path, monkeypatch):
    pg = Playground("spirals")
    pg.run(epochs=2)
    figure = pg.view.stats_figure
    key = figure._key
    png = figure.render(pg)
    assert png.startswith(b"\x89PNG") and figure._key is key  # limits unchanged: the background was reused
    pg.run(epochs=30)
    figure.render(pg)
    assert figure._key is not key  # 32 epochs do not fit the first 25
    monkeypatch.setenv("NN_STATIC_DIR", str(tmp_path))
    path = pg.save_png("playground_test.png")
    assert path == tmp_path / "playground_test.png" and path.read_bytes().startswith(b"\x89PNG")


CFG = {"seed": 0, "model": {"builder": "mlp", "hidden_sizes": [16], "activation": "relu", "dropout": 0.0},
       "train": {"lr": 0.05, "num_epochs": 2, "batch_size": 32, "l2_lambda": 0.0, "optimizer": "sgd", "momentum": 0.9,
                 "nesterov": False, "lr_schedule": "cosine", "decay_factor": 0.5, "decay_steps": 2000, "patience": 0}}


def test_hyperparameter_sliders_from_a_config():
    sliders = hyperparameter_sliders(CFG)
    assert list(sliders)[:3] == ["hidden_sizes", "activation", "dropout"] and sliders["lr"].value == 0.05
    assert sliders["decay_factor"].disabled and sliders["decay_steps"].disabled and not sliders["momentum"].disabled
    sliders["optimizer"].value = "adam"
    assert sliders["momentum"].disabled and sliders["nesterov"].disabled
    sliders["hidden_sizes"].value = "32-16"
    model, train = slider_values(sliders)
    assert model["hidden_sizes"] == [32, 16] and train["optimizer"] == "adam" and train["num_epochs"] == 2
    sliders["hidden_sizes"].value = "32-x"
    with pytest.raises(ValueError, match="hidden sizes: expected numbers"):
        slider_values(sliders)
    with pytest.raises(ValueError, match=r"needs a \[train\] table"):
        hyperparameter_sliders({"model": {}})


def test_training_panel_trains_with_the_one_loop():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 784)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0)
    data = {"X_train": X[:200], "y_train": y[:200], "X_val": X[200:], "y_val": y[200:],
            "image_shape": (1, 28, 28), "num_classes": 4}
    panel = training_panel(CFG, data, quick_size=100)
    assert count_widgets(panel.widget) == {"slider": 9, "button": 1, "dropdown": 3, "checkbox": 2, "text": 1,
                                           "image": 1}
    history = panel.train(quick=True)
    assert len(history) == 2 and panel.settings["train_size"] == 100
    assert panel.model.layers[0].params["W"].shape == (784, 16)
    assert bytes(panel.curves.value).startswith(b"\x89PNG") and "done: best epoch" in panel.status.value
    panel.sliders["num_epochs"].value = 1
    assert "num_epochs=1" in panel.status.value


@pytest.mark.parametrize("where, settings, words", [
    ("set", {"lr": 1e6}, ["train.lr = 1000000.0", "expected a number in (0, 1000]"]),
    ("set", {"hidden_layers": -1}, ["hidden_layers must be an integer between 0 and 20, got -1"]),
    ("set", {"dropout": float("nan")}, ["model.dropout = nan", "expected a number in [0, 1)"]),
    ("set", {"momentum": 1.5}, ["train.momentum = 1.5", "[0, 1)"]),
    ("set", {"momentum": "a"}, ["train.momentum = 'a'", "a number"]),
    ("set", {"decay_steps": 0}, ["train.decay_steps = 0", "an integer in [1"]),
    ("set", {"beta2": 1.0}, ["beta2 = 1.0", "a number in [0, 1)"]),
    ("set", {"batch_size": 0}, ["train.batch_size = 0", "an integer in [1"]),
    ("set", {"units": 10 ** 7}, ["units must be an integer between 1 and 65536, got 10000000"]),
    ("set", {"optimizer": "rmsprop"}, ["train.optimizer = 'rmsprop'", "one of 'sgd', 'adam'"]),
    ("set", {"noise": 2}, ["noise = 2", "a number in [0, 1]"]),
    ("set", {"dataset": "moons"}, ["dataset must be one of", "got 'moons'"]),
    ("init", {"lr": 0}, ["train.lr = 0", "(0, 1000]"]),
    ("init", {"units": 1.5}, ["units must be an integer", "got 1.5"]),
    ("run", {"epochs": -1}, ["epochs must be an integer between 0 and 10000, got -1"]),
    ("run", {"epochs": 1.5}, ["epochs must be an integer", "got 1.5"]),
    ("run", {"epochs": "2"}, ["epochs must be an integer", "got '2'"]),
], ids=["lr-1e6", "hidden-layers-negative", "dropout-nan", "momentum-1.5", "momentum-text", "decay-steps-0",
        "beta2-1", "batch-size-0", "units-1e7", "rmsprop", "noise-2", "dataset-moons", "init-lr-0",
        "init-units-float", "run-negative", "run-float", "run-text"])
def test_bad_settings_are_refused_before_anything_changes(where, settings, words):
    pg = Playground("xor", ui=False) if where != "init" else None
    before = None if pg is None else (dict(pg.settings), weights(pg), pg.epoch)
    with pytest.raises(ValueError) as e:
        if where == "init":
            Playground("xor", ui=False, **settings)
        elif where == "set":
            pg.set(**settings)
        else:
            pg.run(**settings)
    for w in words:
        assert w in str(e.value), str(e.value)
    if pg is not None:
        assert pg.settings == before[0] and pg.epoch == before[2]
        assert all(np.array_equal(a, b) for a, b in zip(before[1], weights(pg)))
