"""Experiments as files: one TOML file in configs/ defines everything a run depends on.

    cfg = load_config("mlp_fashion")                       # configs/mlp_fashion.toml
    cfg = load_config("configs/mlp_fashion.toml", overrides={"lr": 0.01})
    data = load_data(cfg)                                  # utils.core.experiment
    model = build_model(cfg, data)                         # utils.core.experiment
    history = train(model, data["X_train"], ..., seed=cfg["seed"], **cfg["train"])  # utils.core.train

A config has the top-level keys name, checkpoint, seed and the tables [data], [model] and
[train]; a search config names its experiment and adds [search] and [search.space]. A config
may `extends = "other"`: it then holds only what differs. SCHEMA below is the one place that
says which keys exist and which values each takes: the training loop, the search, the
command lines and the notebooks' sliders all check their values through check_value.
"""
import difflib
import math
import numbers
import os
import shlex
from pathlib import Path

import numpy as np

from utils.plumbing import paths
from utils.plumbing.config_files import MAX_DEPTH, check_mlp_size, depth, parse_assignments, read_toml
from utils.plumbing.errors import ConfigError
from utils.plumbing.language import _

CONFIG_DIR = paths.ROOT / "configs"
DEFAULT_EXPERIMENT = "mlp_fashion"
DEFAULT_SEARCH = "search_fashion"
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh")


def _number(low, high, *, integer=False, low_open=False, high_open=False):
    """A check for a finite number in a range; ints are accepted where floats are expected."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    interval = f"{left}{low:g}, {high:g}{right}"
    expected = f"{'an integer' if integer else 'a number'} in {interval}"  # English; the error is translated

    def check(v):
        # NumPy's numbers count too (a seed from np.arange, an lr from np.logspace); bools do not.
        ok_type = isinstance(v, numbers.Integral if integer else numbers.Real)
        if (isinstance(v, (bool, np.bool_)) or not ok_type or not math.isfinite(v)
                or v < low or (low_open and v == low) or v > high or (high_open and v == high)):
            raise ValueError((_("an integer in {interval}") if integer else _("a number in {interval}")).format(
                interval=interval))
        return int(v) if integer else float(v)
    check.expected = expected
    return check


def _choice(*options):
    expected = "one of " + ", ".join(map(repr, options))

    def check(v):
        if v not in options or not isinstance(v, str):
            raise ValueError(_("one of {options}").format(options=", ".join(map(repr, options))))
        return v
    check.expected, check.options = expected, options
    return check


def _boolean(v):
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(_("true or false"))
    return bool(v)


_boolean.expected = "true or false"


def _sizes(v):
    if (not isinstance(v, (list, tuple)) or not 1 <= len(v) <= 20
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) and 1 <= s <= 65536
                       for s in v)):
        raise ValueError(_("a list of 1 to 20 integers in [1, 65536], e.g. [64, 32]"))
    return [int(s) for s in v]


_sizes.expected = "a list of 1 to 20 integers in [1, 65536], e.g. [64, 32]"


def _text(v):
    if not isinstance(v, str) or not 0 < len(v) <= 200 or "/" in v or "\\" in v or v.startswith("."):
        raise ValueError(_("a short text without slashes, e.g. \"mlp_fashion\""))
    return v


_text.expected = "a short text without slashes, e.g. \"mlp_fashion\""

SCHEMA = {
    "": {"name": _text, "checkpoint": _text, "seed": _number(0, 2 ** 32 - 1, integer=True),
         "extends": _text, "experiment": _text},
    "data": {
        "dataset": _choice("fashion_mnist", "cifar10"),
        "val_size": _number(1, 100000, integer=True),
        "augment": _choice("none", "mirror"),
    },
    "model": {
        "builder": _choice("mlp", "lenet5"),
        "hidden_sizes": _sizes,
        "activation": _choice(*ACTIVATIONS),  # utils.core.models maps each name to its layer
        "dropout": _number(0, 1, high_open=True),
    },
    "train": {
        "lr": _number(0, 1000, low_open=True),
        "num_epochs": _number(1, 10000, integer=True),
        "batch_size": _number(1, 1 << 20, integer=True),
        "l2_lambda": _number(0, 10),
        "optimizer": _choice("sgd", "adam"),
        "momentum": _number(0, 1, high_open=True),
        "nesterov": _boolean,
        "lr_schedule": _choice("constant", "step", "exponential", "cosine"),
        "decay_factor": _number(0, 1, low_open=True),
        "decay_steps": _number(1, 1 << 40, integer=True),
        "patience": _number(0, 10000, integer=True),
    },
    "search": {
        "mode": _choice("grid", "tpe"),
        "n_trials": _number(1, 100000, integer=True),
        "train_size": _number(10, 1 << 24, integer=True),
        "num_epochs": _number(1, 10000, integer=True),
        "prune": _boolean,
        "workers": _number(0, 1024, integer=True),
        "space": None,  # checked by check_space
    },
}


# The hyperparameters of a model's shape (the search and the sliders set them), and the required keys.
MODEL_KEYS = tuple(k for k in SCHEMA["model"] if k != "builder")
REQUIRED = {"": {"name", "seed", "checkpoint"}, "data": set(SCHEMA["data"]), "model": {"builder"},
            "train": set(SCHEMA["train"])}


def did_you_mean(key, known):
    close = [k for k in known if k.startswith(str(key))] or difflib.get_close_matches(str(key), known, n=1)
    return _(" (did you mean {name}?)").format(name=repr(close[0])) if close else ""


def check_value(section, key, value, where="config"):
    """Return value in canonical form, or raise ConfigError naming where, the key, the value and what is expected.

    section: "" for the top level, else "data", "model", "train" or "search".
    """
    known = SCHEMA.get(section)
    if known is None:
        raise ConfigError(_("{where}: unknown table [{section}]{did_you_mean}; known: {known}").format(
            where=where, section=section, did_you_mean=did_you_mean(section, SCHEMA),
            known=", ".join(s for s in SCHEMA if s)))
    full = f"{section}.{key}" if section else str(key)
    if key not in known:
        raise ConfigError(_("{where}: unknown key {key}{did_you_mean}; known in {table}: {known}").format(
            where=where, key=repr(full), did_you_mean=did_you_mean(key, known),
            table=_("the top level") if not section else f"[{section}]", known=", ".join(known)))
    if key == "space":
        return value  # checked by check_space once the search mode is known (_check_together)
    try:
        return known[key](value)
    except ValueError as e:
        raise ConfigError(_("{where}: {key} = {value}: expected {expected}").format(
            where=where, key=full, value=repr(value), expected=e)) from None


def check_space(space, mode="grid", where="config"):
    """A search space {name: [values]} (in tpe mode also {name: {low, high, log}}), every value checked."""
    if not isinstance(space, dict) or not space:
        raise ConfigError(_("{where}: search.space must be a table name -> list of values, e.g. "
                            "lr = [0.1, 0.01]; got {space}").format(where=where, space=repr(space)))
    out = {}
    for name, values in space.items():
        section = next((s for s in ("model", "train") if name in SCHEMA[s]), None)
        if section is None or name == "builder":
            searchable = [k for s in ("model", "train") for k in SCHEMA[s] if k != "builder"]
            raise ConfigError(_("{where}: search.space.{name}: not a searchable hyperparameter{did_you_mean}; "
                                "searchable: {searchable}").format(where=where, name=name, searchable=", ".join(
                                    searchable), did_you_mean=did_you_mean(name, searchable)))
        if isinstance(values, dict) and mode == "tpe" and {"low", "high"} <= values.keys() <= {"low", "high", "log"}:
            low, high = (check_value(section, name, values[k], where) for k in ("low", "high"))
            if isinstance(low, (list, str, bool)) or not low < high:
                raise ConfigError(_("{where}: search.space.{name}: a range needs numbers low < high, got {values}")
                                  .format(where=where, name=name, values=repr(values)))
            out[name] = {"low": low, "high": high, "log": _boolean(values.get("log", False))}
            continue
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError((_("{where}: search.space.{name}: expected a non-empty list of values or a range "
                                 "{{low, high, log}}, got {values}") if mode == "tpe" else
                               _("{where}: search.space.{name}: expected a non-empty list of values, got {values}"))
                              .format(where=where, name=name, values=repr(values)))
        checked = [check_value(section, name, v, where) for v in values]
        if len({repr(v) for v in checked}) < len(checked):
            raise ConfigError(_("{where}: search.space.{name}: values repeat: {values}").format(
                where=where, name=name, values=repr(values)))
        out[name] = checked
    return out


def config_path(name):
    """configs/<name>.toml for a bare name, else the path itself."""
    path = Path(name)
    if path.suffix != ".toml" and len(path.parts) == 1:
        path = CONFIG_DIR / f"{name}.toml"
    return path


def _read_toml(path):
    return read_toml(path, CONFIG_DIR)


def _merge(base, top):
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "space" else v
    return out


def _raw(name, seen=()):
    """The config file's tables, with what it extends merged in underneath.

    seen: the files (resolved paths) that led here by extends or experiment, to refuse a cycle.
    """
    path = config_path(name)
    if path.resolve() in seen:
        chain = " -> ".join(map(str, (*seen, path.resolve())))
        raise ConfigError(_("{path}: 'extends' or 'experiment' goes round in a circle: {chain}; "
                            "expected a chain of configs that ends").format(path=path, chain=chain))
    if len(seen) >= MAX_DEPTH:
        raise ConfigError(_("{path}: more than {n} configs extend each other; expected a shorter chain").format(
            path=path, n=MAX_DEPTH))
    raw = _read_toml(path)
    parent = raw.pop("extends", None)
    if parent is not None:
        raw = _merge(_raw(check_value("", "extends", parent, str(path)), (*seen, path.resolve())), raw)
    return raw


def load_config(name=DEFAULT_EXPERIMENT, overrides=None):
    """Read, merge and check an experiment or search config; returns a plain dict.

    name: a name in configs/ ("mlp_fashion") or a path to a .toml file.
    overrides: {key: value}, key as "train.lr" or, where unambiguous, "lr" (see parse_assignments).
    A search config (one with [search]) also gets every table of its experiment.
    Raises ConfigError naming the file and the key for unknown keys and bad values.
    """
    return _load(name, overrides, ())


def _load(name, overrides, seen):
    where = str(config_path(name))
    raw = _raw(name, seen)
    if "search" in raw:
        experiment = raw.get("experiment")
        if experiment is None:
            raise ConfigError(_("{where}: a search config needs experiment = \"<name of an experiment config>\"")
                              .format(where=where))
        base = _load(check_value("", "experiment", experiment, where), None,
                     (*seen, config_path(name).resolve()))
        raw = _merge({k: v for k, v in base.items() if k != "name"}, raw)
    elif "experiment" in raw:
        raise ConfigError(_("{where}: experiment = {value} applies to a search config (one with a [search] table); "
                            "an experiment config builds on another with extends = \"<name>\"").format(
                              where=where, value=f"{raw['experiment']!r:.80}"))
    placed = {}
    for key, value in (overrides or {}).items():
        section, leaf = _locate(key, raw, where)
        full = f"{section}.{leaf}" if section else leaf
        if full in ("extends", "experiment"):
            raise ConfigError(_("{where}: {key} cannot be overridden (it is followed when the file is read); "
                                "write it in the config file, or choose another file with --config").format(
                                  where=where, key=full))
        if full in placed:
            raise ConfigError(_("{where}: {key} is set twice in the overrides ({first} and {second}); "
                                "expected each key once").format(where=where, key=full, first=repr(placed[full]),
                                                                 second=repr(key)))
        placed[full] = key
        if depth(value) > MAX_DEPTH:
            raise ConfigError(_("{where}: the override {key} is nested more than {n} deep").format(
                where=where, key=key, n=MAX_DEPTH))
        (raw.setdefault(section, {}) if section else raw)[leaf] = value
    cfg = {}
    for key, value in raw.items():
        if key in SCHEMA and key and not isinstance(value, dict):
            got = _("an array of tables [[...]]") if isinstance(value, list) else f"{value!r:.80}"
            raise ConfigError(_("{where}: {key} must be the table [{key}], got {got}").format(
                where=where, key=key, got=got))
        if isinstance(value, dict):
            if key not in SCHEMA:
                check_value(key, None, None, where)  # raises "unknown table", with a did-you-mean
            cfg[key] = {k: check_value(key, k, v, where) for k, v in value.items()}
        else:
            cfg[key] = check_value("", key, value, where)
    for section, keys in REQUIRED.items():
        have = cfg if not section else cfg.get(section, {})
        missing = sorted(keys - have.keys())
        if missing:
            raise ConfigError(_("{where}: missing {keys}").format(
                where=where, keys=", ".join((section + "." if section else "") + k for k in missing)))
    _check_together(cfg, where)
    return cfg


def _locate(key, raw, where):
    """'train.lr' -> ('train', 'lr'); 'lr' -> the one table that knows it."""
    if "." in key:  # the name is checked with its value, in load_config
        section, leaf = key.split(".", 1)
        return section, leaf
    owners = [s for s, keys in SCHEMA.items() if key in keys]
    if not owners:
        known = [k for keys in SCHEMA.values() for k in keys]
        raise ConfigError(_("{where}: unknown key {key} in the overrides{did_you_mean}").format(
            where=where, key=repr(key), did_you_mean=did_you_mean(key, known)))
    if len(owners) > 1:
        present = [s for s in owners if s in raw]
        if len(present) != 1:
            raise ConfigError(_("{where}: {key} is in {tables}; write it as {choices}").format(
                where=where, key=repr(key), tables=", ".join(f"[{s}]" for s in owners),
                choices=_(" or ").join(f"{s}.{key}" for s in owners)))
        owners = present
    return owners[0], key


def _check_together(cfg, where):
    """Rules across keys: what one key allows depends on another."""
    model, train = cfg["model"], cfg["train"]
    if model["builder"] == "mlp" and "hidden_sizes" not in model:
        raise ConfigError(_("{where}: the mlp builder needs model.hidden_sizes, e.g. [64, 32]").format(where=where))
    inputs = {"fashion_mnist": 784, "cifar10": 3072}[cfg["data"]["dataset"]]  # pixels per image
    if model["builder"] == "mlp":
        check_mlp_size([inputs, *model["hidden_sizes"], 10], _("{where}: {key}").format(
            where=where, key="model.hidden_sizes"))
    if model["builder"] == "lenet5" and "hidden_sizes" in model:
        raise ConfigError(_("{where}: model.hidden_sizes does not apply to lenet5 (its sizes are fixed); remove it")
                          .format(where=where))
    check_nesterov(train, where)
    search = cfg.get("search")
    if search is not None:
        if "space" not in search:
            raise ConfigError(_("{where}: a search config needs a [search.space] table").format(where=where))
        search["space"] = check_space(search["space"], search.get("mode", "grid"), where)
        for sizes in search["space"].get("hidden_sizes", []) if model["builder"] == "mlp" else []:
            check_mlp_size([inputs, *sizes, 10], _("{where}: {key}").format(where=where,
                                                                            key="search.space.hidden_sizes"))
        if search.get("mode", "grid") == "tpe" and "n_trials" not in search:
            raise ConfigError(_("{where}: search.mode = \"tpe\" needs search.n_trials").format(where=where))
        if search.get("mode", "grid") == "grid" and "n_trials" in search:
            raise ConfigError(_("{where}: search.mode = \"grid\" runs every point; remove search.n_trials").format(
                where=where))


def check_nesterov(train, where="config"):
    """The one rule across optimiser settings: Nesterov momentum needs SGD with a momentum > 0."""
    if train.get("nesterov") and (train.get("optimizer", "sgd") != "sgd" or not train.get("momentum")):
        raise ConfigError(_("{where}: nesterov = true needs optimizer = \"sgd\" and momentum > 0, got optimizer "
                            "{optimizer}, momentum {momentum}").format(where=where, optimizer=repr(
                                train.get("optimizer", "sgd")), momentum=repr(train.get("momentum", 0))))


def for_notebook(kind, dataset=None):
    """The config a notebook runs: kind "mlp", "search" or "lenet5", for the data set named by
    the environment variable DATASET (fashion_mnist, the default, or cifar10), e.g. configs/mlp_cifar10.toml.

    The environment variable NN_SET changes it for a quick trial run without editing a file,
    e.g. NN_SET="train.num_epochs=1 search.train_size=2000"; keys of a table the config does not
    have (search.* for an experiment) are left out.
    """
    dataset = dataset or os.environ.get("DATASET", "fashion_mnist")
    suffix = {"fashion_mnist": "fashion", "cifar10": "cifar10"}.get(dataset)
    if suffix is None or kind not in ("mlp", "search", "lenet5"):
        raise ConfigError(_("DATASET must be fashion_mnist or cifar10 and kind mlp, search or lenet5; "
                            "got DATASET={dataset}, kind={kind}").format(dataset=repr(dataset), kind=repr(kind)))
    name = f"{kind}_{suffix}"
    overrides = parse_assignments(shlex.split(os.environ.get("NN_SET", "")))
    if kind != "search":
        overrides = {k: v for k, v in overrides.items() if not k.startswith("search.")}
    return load_config(name, overrides)


def describe(cfg):
    """One line that names the experiment, e.g. "784-512-256-10 MLP, relu, dropout 0.2, sgd ..."."""
    m, t = cfg["model"], cfg["train"]
    arch = ("LeNet-5" if m["builder"] == "lenet5" else _("MLP with hidden layers {sizes}, {activation}").format(
        sizes="-".join(map(str, m["hidden_sizes"])), activation=m["activation"]))
    opt = t["optimizer"] + (_(" (momentum {momentum:g})").format(momentum=t["momentum"])
                            if t["optimizer"] == "sgd" and t["momentum"] else "")
    drop = _(", dropout {dropout:g}").format(dropout=m["dropout"]) if m.get("dropout") else ""
    schedule = {"constant": _("constant"), "step": _("step"), "exponential": _("exponential"),
                "cosine": _("cosine")}.get(t["lr_schedule"], t["lr_schedule"])  # the name the panel shows
    return _("{arch}{dropout}; {optimizer}, lr {lr:g} with {schedule} decay, L2 {l2:g}, batch {batch}, {epochs} "
             "epochs; {dataset}").format(arch=arch, dropout=drop, optimizer=opt, lr=t["lr"], schedule=schedule,
                                         l2=t["l2_lambda"], batch=t["batch_size"], epochs=t["num_epochs"],
                                         dataset=cfg["data"]["dataset"])
