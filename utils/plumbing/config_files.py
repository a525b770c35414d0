"""Config files read under limits: their size, their encoding, how deeply they nest, and the size of the
model they describe. utils/plumbing/config.py reads every config through read_toml, and the --set KEY=VALUE
of the command lines through parse_assignments.
"""
import os

import tomllib

from utils.plumbing.errors import ConfigError
from utils.plumbing.language import _

MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 8                   # tables and lists inside each other; a search config needs 5
# The most weights an MLP a config describes may have (1 GiB as float32; training holds 3 to 4 times
# that: gradients and the optimiser's slots). The environment variable NN_MAX_WEIGHTS raises it.
MAX_WEIGHTS = 2 ** 28


def max_weights():
    """MAX_WEIGHTS, or the environment variable NN_MAX_WEIGHTS if it is set (a positive integer)."""
    text = os.environ.get("NN_MAX_WEIGHTS")
    if text is None:
        return MAX_WEIGHTS
    if not text.strip().isdigit() or int(text) < 1:
        raise ConfigError(_("NN_MAX_WEIGHTS must be a positive integer (the most weights a model may have), "
                            "got {text}").format(text=repr(text)))
    return int(text)


def check_mlp_size(sizes, where="config"):
    """Refuse an MLP of layer sizes [inputs, hidden..., outputs] whose weights exceed max_weights().

    Checked before anything is allocated, so a config such as hidden_sizes = [65536] * 20
    gets this message instead of a MemoryError.
    """
    weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    limit = max_weights()
    if weights > limit:
        raise ConfigError(_("{where}: the MLP {sizes} would allocate {weights:,} weights ({gib:,.1f} GiB as float32, "
                            "several times that while training); the limit is {limit:,}: choose smaller "
                            "hidden_sizes, or raise the limit with the environment variable NN_MAX_WEIGHTS if the "
                            "machine has the memory").format(where=where, sizes="-".join(map(str, sizes)),
                                                             weights=weights, gib=weights * 4 / 2 ** 30, limit=limit))
    return weights


def depth(value, limit=MAX_DEPTH):
    """How deeply lists and tables nest in value (counted without recursion), at most limit + 1."""
    deepest, level = 0, [value]
    while deepest <= limit:
        level = [v for x in level if isinstance(x, (dict, list)) for v in (x.values() if isinstance(x, dict) else x)]
        if not level:
            break
        deepest += 1
    return deepest


def check_depth(raw, where):
    if depth(raw) > MAX_DEPTH:
        raise ConfigError(_("{where}: tables and lists nested more than {n} deep; a config needs at most 5 (the "
                            "file, [search], [search.space], hidden_sizes = [[64, 32]])").format(
                                where=where, n=MAX_DEPTH))


def read_toml(path, config_dir):
    """The tables of the TOML file at path, read under limits: its size, no byte-order mark, the nesting depth.

    config_dir: the folder of the project's configs, listed when there is no file at path.
    """
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in config_dir.glob("*.toml")))
        raise ConfigError(_("no config file at {path}; the configs in {folder}: {known}").format(
            path=path, folder=config_dir, known=known))
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(_("{path}: {size} bytes is too large for a config (limit {limit})").format(
            path=path, size=path.stat().st_size, limit=MAX_CONFIG_BYTES))
    try:
        text = path.read_text(encoding="utf-8")
        if text.startswith("\ufeff"):
            raise ConfigError(_("{path}: the file starts with a UTF-8 byte-order mark (BOM, bytes EF BB BF), "
                                "which TOML does not allow; save it as UTF-8 without BOM").format(path=path))
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(_("{path}: not valid TOML ({error})").format(path=path, error=e)) from None
    except RecursionError:
        raise ConfigError(_("{path}: tables or lists nested too deeply to read; a config needs at most "
                            "{n} levels").format(path=path, n=MAX_DEPTH)) from None
    check_depth(raw, path)
    return raw


def parse_assignments(items):
    """["lr=0.01", "model.hidden_sizes=[256, 128]", "optimizer=adam"] -> {key: value}.

    Values are read as TOML values (numbers, true/false, lists, quoted text); anything that
    is not TOML is taken as text, so optimizer=adam works without quotes.
    """
    out = {}
    for item in items or ():
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(_("--set: expected KEY=VALUE (e.g. lr=0.01), got {item}").format(item=repr(item)))
        key = key.strip()
        if key in out:
            raise ConfigError(_("--set: {key} is given twice ({first} and {second}); expected each key once").format(
                key=key, first=repr(out[key]), second=repr(text.strip())))
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        except RecursionError:
            raise ConfigError(_("--set {key}: the value is nested too deeply; a config needs at most {n} levels")
                              .format(key=key, n=MAX_DEPTH)) from None
        if depth(value) > MAX_DEPTH:
            raise ConfigError(_("--set {key}: the value is nested more than {n} deep").format(key=key, n=MAX_DEPTH))
        out[key] = value
    return out
