"""Checkpoints: round trip, refusal of hostile files, shape mismatches and atomic writes."""
import json
import os

import numpy as np
import pytest

from module import mlp
from utils import checkpoint
from utils.checkpoint import atomic_write, load_arrays, load_model, load_weights, save_json, save_model


def test_round_trip_gives_identical_predictions(tmp_path):
    model = mlp([6, 5, 4, 3], "tanh", dropout=0.2, rng=0)
    x = np.random.default_rng(1).standard_normal((7, 6)).astype(np.float32)
    save_model(model, tmp_path / "m.npz", hyperparameters={"lr": 0.1}, metrics={"val_acc": np.float32(0.5)})
    rebuilt, meta = load_model(tmp_path / "m.npz")
    assert rebuilt.config() == model.config()
    assert np.array_equal(rebuilt.predict_proba(x), model.predict_proba(x))
    assert meta["hyperparameters"] == {"lr": 0.1} and meta["metrics"]["val_acc"] == 0.5
    assert all(p.dtype == np.float32 for p in rebuilt.params.values())


def test_float64_model_round_trip(tmp_path):
    model = mlp([3, 2], rng=0, dtype=np.float64)
    save_model(model, tmp_path / "m.npz")
    assert load_model(tmp_path / "m.npz")[0].params["0.W"].dtype == np.float64


def test_pickled_object_arrays_are_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    meta = np.array(json.dumps({"format_version": 1, "architecture": []}))
    np.savez(tmp_path / "evil.npz", **{"0.W": np.array([Boom()], dtype=object), "__meta__": meta})
    with pytest.raises(ValueError, match="refused to load"):
        load_model(tmp_path / "evil.npz")
    assert not (tmp_path / "pwned").exists()


def test_unknown_layer_type_is_refused(tmp_path):
    meta = np.array(json.dumps({"format_version": 1, "architecture": [{"type": "os.system", "command": "ls"}]}))
    np.savez(tmp_path / "evil.npz", __meta__=meta)
    with pytest.raises(ValueError, match="unknown layer type 'os.system'"):
        load_model(tmp_path / "evil.npz")


@pytest.mark.parametrize("content, message", [
    (b"not a zip file at all", "not a readable .npz"),
    (None, "no '__meta__' JSON record"),
])
def test_not_a_checkpoint(tmp_path, content, message):
    path = tmp_path / "x.npz"
    if content is None:
        np.savez(path, a=np.ones(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_arrays(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(tmp_path / "nothing.npz")


def test_architecture_mismatch_names_layer_and_shapes(tmp_path):
    save_model(mlp([784, 128, 10], rng=0), tmp_path / "m.npz")
    arrays, _ = load_arrays(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"layer 0 \(Linear.*0\.W has shape \(784, 256\) in the model but \(784, 128\)"):
        load_weights(mlp([784, 256, 10], rng=0), arrays)
    with pytest.raises(ValueError, match=r"missing \['4.W', '4.b'\]"):
        load_weights(mlp([784, 128, 10, 10], rng=0), arrays)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "best.npz"
    old = mlp([3, 2], rng=0)
    save_model(old, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if the kernel were interrupted mid-write

    monkeypatch.setattr(checkpoint.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_model(mlp([3, 2], rng=1), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["best.npz"]  # no temporary file left behind


def test_atomic_write_and_json(tmp_path):
    with atomic_write(tmp_path / "sub" / "a.txt", "w") as f:
        f.write("hello")
    assert (tmp_path / "sub" / "a.txt").read_text() == "hello"
    save_json({"x": np.float32(0.25), "y": np.arange(2)}, tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": 0.25, "y": [0, 1]}
