"""The experiment configs: every committed file loads, every bad key and value gets a clear error."""
import json
import re
from pathlib import Path

import pytest

from utils.core.experiment import build_model
from utils.core.models import ACTIVATIONS
from utils.plumbing import config
from utils.plumbing.config import (
    CONFIG_DIR,
    SCHEMA,
    check_nesterov,
    check_value,
    describe,
    load_config,
    parse_assignments,
)
from utils.plumbing.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_committed_config_loads_and_is_named_after_its_file(path):
    cfg = load_config(path)
    assert cfg["name"] == path.stem
    assert set(cfg["train"]) == set(SCHEMA["train"])  # nothing left to a default elsewhere


def test_the_headline_experiment():
    cfg = load_config()
    assert cfg["model"] == {"builder": "mlp", "hidden_sizes": [512, 256], "activation": "relu", "dropout": 0.2}
    assert "MLP with hidden layers 512-256" in describe(cfg)


def test_a_search_config_carries_its_experiment():
    cfg = load_config("search_fashion")
    assert cfg["experiment"] == "mlp_fashion"
    assert cfg["train"] == load_config("mlp_fashion")["train"]
    assert cfg["search"]["space"]["hidden_sizes"] == [[512, 256], [256, 128], [512]]


def test_extends_keeps_one_copy_of_the_headline_values():
    cifar = load_config("mlp_cifar10")
    assert cifar["data"]["dataset"] == "cifar10"
    assert cifar["train"] == load_config("mlp_fashion")["train"] and cifar["model"] == load_config()["model"]
    text = (CONFIG_DIR / "mlp_cifar10.toml").read_text()
    assert "lr" not in re.findall(r"^(\w+) =", text, re.M)


def test_the_headline_values_are_written_once():
    """grep: the headline hyperparameters stand as literals in configs/mlp_fashion.toml and in no code."""
    t = load_config()["train"]
    pattern = re.compile(rf"lr\W{{1,4}}{t['lr']}\b|\[512, 256\]|num_epochs\W{{1,4}}{t['num_epochs']}\b")
    sources = {p: p.read_text() for p in [*ROOT.glob("utils/*.py"), ROOT / "module.py"]}
    for p in ROOT.glob("notebooks/*.ipynb"):  # the cells people write, not the outputs the run printed
        if p.name == "00_playground.ipynb":  # a toy network with settings of its own, not the headline experiment
            continue
        sources[p] = "".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"])
    hits = [p.name for p, text in sources.items() if pattern.search(text)]
    assert hits == [], f"headline values restated in {hits}"


@pytest.mark.parametrize("overrides, message", [
    ({"lr": "fast"}, r"train.lr = 'fast': expected a number in \(0, 1000\]"),
    ({"lr": 0}, r"train.lr = 0: expected a number in \(0, 1000\]"),
    ({"train.lrr": 0.1}, "unknown key 'train.lrr' \\(did you mean 'lr'\\?\\)"),
    ({"learning_rate": 0.1}, "unknown key 'learning_rate'"),
    ({"model.activation": "gelu"}, "model.activation = 'gelu': expected one of 'relu'"),
    ({"model.hidden_sizes": [512, 0]}, "model.hidden_sizes = \\[512, 0\\]: expected a list of 1 to 20 integers"),
    ({"model.hidden_sizes": [2.7]}, "expected a list of 1 to 20 integers"),
    ({"model.hidden_sizes": ["8"]}, "expected a list of 1 to 20 integers"),
    ({"model.dropout": 1.0}, r"model.dropout = 1.0: expected a number in \[0, 1\)"),
    ({"model.dropout": float("nan")}, "model.dropout = nan"),
    ({"data.dataset": "mnist"}, "data.dataset = 'mnist': expected one of 'fashion_mnist', 'cifar10'"),
    ({"data.val_size": 0}, "data.val_size = 0: expected an integer"),
    ({"seed": -3}, "seed = -3: expected an integer"),
    ({"nesterov": "no"}, "train.nesterov = 'no': expected true or false"),
    ({"nesterov": True, "optimizer": "adam"}, "nesterov = true needs optimizer"),
    ({"decay_steps": 0}, "train.decay_steps = 0"),
    ({"model.builder": "lenet5"}, "hidden_sizes does not apply to lenet5"),
    ({"dataa.dataset": "cifar10"}, "unknown table \\[dataa\\] \\(did you mean 'data'\\?\\)"),
])
def test_bad_values_name_the_file_the_key_and_what_is_expected(overrides, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_config("mlp_fashion", overrides)
    assert "mlp_fashion.toml" in str(e.value)


@pytest.mark.parametrize("text, message", [
    ('name = "x"\n[trian]\nlr = 1\n', r"unknown table \[trian\] \(did you mean 'train'\?\)"),
    ('extends = "mlp_fashion"\n[train]\nlearning_rate = 0.1\n', "unknown key 'train.learning_rate'"),
    ('extends = "mlp_fashion"\n[train]\nlr = "0.1"\n', "train.lr = '0.1': expected a number"),
    ('name = "x"\n', "missing checkpoint, seed"),
    ('extends = "mlp_fashion"\nname = "x"\n[model]\nhidden_sizes = 512\n', "model.hidden_sizes = 512"),
    ("name = [unclosed\n", "not valid TOML"),
    ('extends = "nowhere"\n', "no config file at .*nowhere.toml; the configs in"),
    ('extends = "mlp_fashion"\n[search]\nmode = "grid"\n', "a search config needs experiment"),
    ('name = "s"\nexperiment = "mlp_fashion"\n[search]\nmode = "grid"\n', r"needs a \[search.space\] table"),
    ('name = "s"\nexperiment = "mlp_fashion"\n[search]\nmode = "grid"\n[search.space]\nlr = []\n', "non-empty list"),
    ('name = "s"\nexperiment = "mlp_fashion"\n[search]\nmode = "grid"\n[search.space]\nlr = [0.1, 0.1]\n', "values repeat"),
    ('name = "s"\nexperiment = "mlp_fashion"\n[search]\nmode = "grid"\n[search.space]\nbuilder = ["mlp"]\n', "not a searchable"),
    ('name = "s"\nexperiment = "mlp_fashion"\n[search]\nmode = "grid"\n[search.space]\nl2 = [0.1]\n', "did you mean 'l2_lambda'"),
    ('name = "s"\nexperiment = "mlp_fashion"\n[search]\nmode = "tpe"\n[search.space]\nlr = [0.1]\n', "needs search.n_trials"),
    ('name = "s"\nexperiment = "mlp_fashion"\n[search]\nmode = "grid"\nn_trials = 3\n[search.space]\nlr = [0.1]\n', "remove search.n_trials"),
    ('name = "s"\nexperiment = "mlp_fashion"\n[search]\nmode = "tpe"\nn_trials = 3\n[search.space]\nlr = {low = 0.1, high = 0.01}\n', "low < high"),
])
def test_bad_files(text, message, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        load_config(path)
    assert str(path) in str(e.value) or "nowhere" in str(e.value)


def test_extends_in_a_circle_is_refused(tmp_path):
    (tmp_path / "a.toml").write_text(f'extends = "{tmp_path / "b.toml"}"\n'.replace(str(tmp_path) + "/", ""))
    (tmp_path / "b.toml").write_text('extends = "a"\n')
    with pytest.raises(ConfigError):
        load_config(tmp_path / "a.toml")


def test_a_tpe_range_is_accepted_in_tpe_mode(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('experiment = "mlp_fashion"\nname = "s"\n[search]\nmode = "tpe"\nn_trials = 3\n'
                    '[search.space]\nlr = {low = 0.001, high = 0.1, log = true}\n')
    assert load_config(path)["search"]["space"]["lr"] == {"low": 0.001, "high": 0.1, "log": True}


def test_overrides_and_assignments():
    cfg = load_config("mlp_fashion", parse_assignments(["lr=0.01", "optimizer=adam", "model.hidden_sizes=[64]"]))
    assert (cfg["train"]["lr"], cfg["train"]["optimizer"], cfg["model"]["hidden_sizes"]) == (0.01, "adam", [64])
    assert load_config("search_fashion", {"search.num_epochs": 2})["search"]["num_epochs"] == 2
    with pytest.raises(ConfigError, match="write it as train.num_epochs or search.num_epochs"):
        load_config("search_fashion", {"num_epochs": 2})
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_assignments(["lr"])


def test_check_value_is_the_one_check():
    assert check_value("train", "l2_lambda", 0) == 0.0 and isinstance(check_value("train", "l2_lambda", 0), float)
    with pytest.raises(ConfigError, match="expected an integer"):
        check_value("train", "batch_size", 12.0)
    with pytest.raises(ConfigError, match="nesterov = true needs optimizer"):
        check_nesterov({"optimizer": "adam", "momentum": 0.9, "nesterov": True})


def test_the_schema_names_exactly_the_activations_the_models_build():
    assert set(SCHEMA["model"]["activation"].options) == set(ACTIVATIONS)


@pytest.mark.parametrize("name, image_shape, first", [
    ("mlp_fashion", (1, 28, 28), "Linear(in_features=784"),
    ("mlp_cifar10", (3, 32, 32), "Linear(in_features=3072"),
    ("lenet5_cifar10", (3, 32, 32), "Conv2D(in_channels=3"),
])
def test_build_model_sizes_the_model_from_the_data(name, image_shape, first):
    model = build_model(load_config(name), image_shape=image_shape, num_classes=10)
    assert repr(model.layers[0]).startswith(first)
    assert model.layers[-1].params["W"].shape[-1] == 10


def test_notebooks_pick_their_config_by_data_set_and_take_quick_overrides(monkeypatch):
    from utils.plumbing.config import for_notebook
    monkeypatch.setenv("DATASET", "cifar10")
    monkeypatch.setenv("NN_SET", "train.num_epochs=1 search.train_size=2000")
    assert for_notebook("mlp")["name"] == "mlp_cifar10" and for_notebook("mlp")["train"]["num_epochs"] == 1
    assert "search" not in for_notebook("lenet5")
    assert for_notebook("search")["search"]["train_size"] == 2000
    monkeypatch.setenv("DATASET", "mnist")
    with pytest.raises(ConfigError, match="DATASET must be fashion_mnist or cifar10"):
        for_notebook("mlp")


def _write(folder, name, text):
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


HEADLINE = (CONFIG_DIR / "mlp_fashion.toml").read_text()


@pytest.mark.parametrize("text, words", [
    (HEADLINE.replace("hidden_sizes = [512, 256]", "hidden_sizes = [65536, 65536, 65536]"),
     ["model.hidden_sizes", "784-65536-65536-65536-10", "weights", "the limit is 268,435,456", "NN_MAX_WEIGHTS"]),
    ("x = " + "[" * 50_000 + "]" * 50_000, ["nested too deeply"]),
    ("x = " + "[" * 12 + "1" + "]" * 12, ["nested more than 8 deep"]),
    ("\ufeff" + HEADLINE, ["byte-order mark", "BOM", "without BOM"]),
    (HEADLINE.replace("[model]", "[[model]]"), ["model must be the table [model]", "array of tables"]),
    (HEADLINE.replace("[data]", "data = 5\n[dataX]"), ["data must be the table [data], got 5"]),
    (HEADLINE.replace('name = "mlp_fashion"', 'name = "mlp_fashion"\nexperiment = "mlp_fashion"'),
     ["experiment = 'mlp_fashion' applies to a search config", "extends"]),
    ('name = "selfish"\nexperiment = "selfish"\n[search]\n[search.space]\nlr = [0.1]\n',
     ["goes round in a circle", "selfish.toml -> ", "a chain of configs that ends"]),
    ('extends = "other"\n', ["goes round in a circle", "other.toml"]),
], ids=["too-many-weights", "deep-50000", "deep-12", "bom", "array-of-tables", "table-as-number",
        "experiment-in-experiment", "search-names-itself", "extends-cycle"])
def test_bad_config_files_get_one_clear_error(tmp_path, monkeypatch, text, words):
    monkeypatch.setattr(config, "CONFIG_DIR", tmp_path)  # "selfish" and "other" name files here
    _write(tmp_path, "other", 'extends = "selfish"\n')
    path = _write(tmp_path, "selfish", text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    for w in words:
        assert w in str(e.value), str(e.value)
    assert str(path) in str(e.value) or "selfish" in str(e.value)


@pytest.mark.parametrize("items, words", [
    (["lr=0.01", "lr=0.02"], ["lr is given twice", "0.01", "0.02", "each key once"]),
    (["lr=0.01", "train.lr=0.02"], ["train.lr is set twice", "each key once"]),
    (["extends=mlp_cifar10"], ["extends cannot be overridden", "--config"]),
    (["experiment=mlp_fashion"], ["experiment cannot be overridden"]),
    (["hidden_sizes=" + "[" * 50_000 + "]" * 50_000], ["--set hidden_sizes", "nested too deeply"]),
    (["hidden_sizes=" + "[" * 10 + "]" * 10], ["nested more than 8 deep"]),
    (["hidden_sizes=[65536, 65536, 65536]"], ["would allocate", "NN_MAX_WEIGHTS"]),
], ids=["same-key-twice", "same-key-two-spellings", "extends", "experiment", "deep-50000", "deep-10", "too-big"])
def test_bad_overrides_get_one_clear_error(items, words):
    with pytest.raises(ConfigError) as e:
        load_config("mlp_fashion", parse_assignments(items))
    for w in words:
        assert w in str(e.value), str(e.value)


def test_the_weight_limit_can_be_raised_and_counts_the_search_space(monkeypatch, tmp_path):
    big = HEADLINE.replace("hidden_sizes = [512, 256]", "hidden_sizes = [65536, 8192]")
    with pytest.raises(ConfigError, match="NN_MAX_WEIGHTS"):
        load_config(_write(tmp_path, "big", big))
    monkeypatch.setenv("NN_MAX_WEIGHTS", str(2 ** 30))
    assert load_config(_write(tmp_path, "big", big))["model"]["hidden_sizes"] == [65536, 8192]
    monkeypatch.setenv("NN_MAX_WEIGHTS", "lots")
    with pytest.raises(ConfigError, match="NN_MAX_WEIGHTS must be a positive integer .*, got 'lots'"):
        load_config(_write(tmp_path, "big", big))
    monkeypatch.delenv("NN_MAX_WEIGHTS")
    search = _write(tmp_path, "s", 'name = "s"\nexperiment = "mlp_fashion"\n[search]\n[search.space]\n'
                                   'hidden_sizes = [[64], [65536, 65536]]\n')
    with pytest.raises(ConfigError, match="search.space.hidden_sizes: the MLP 784-65536-65536-10"):
        load_config(search)
