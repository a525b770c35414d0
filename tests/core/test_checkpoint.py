"""Checkpoints: round trip, refusal of hostile files, shape mismatches and atomic writes."""
import io
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from module import Conv2D, Flatten, Linear, MaxPool2D, ReLU
from utils.core import checkpoint
from utils.core.checkpoint import atomic_write, load_arrays, load_model, load_weights, save_model
from utils.core.datasets import CLASS_NAMES
from utils.core.models import Sequential, lenet5, mlp
from utils.plumbing.errors import CheckpointError
from utils.plumbing.files import save_json


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


# --- Hostile and broken files: every one is refused with CheckpointError before a model is built ---

def write_npz(path, arrays, meta, compression=zipfile.ZIP_STORED, extra=()):
    """A checkpoint written by hand: any arrays (any dtype), any meta (None: no record), extra raw members."""
    with zipfile.ZipFile(path, "w", compression) as z:
        if meta is not None:
            text = meta if isinstance(meta, str) else json.dumps(meta)
            arrays = {**arrays, "__meta__": np.array(text)}
        for name, a in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)
        for name, data in extra:
            z.writestr(name, data)
    return path


def valid(dtype=np.float32):
    arch = [{"type": "Linear", "in_features": 4, "out_features": 3, "init": "he"}]
    return {"0.W": np.ones((4, 3), dtype), "0.b": np.zeros(3, dtype)}, {"format_version": 1, "architecture": arch}


def spec(arrays=None, **changes):
    a, meta = valid()
    if arrays:
        a.update(arrays)
    meta.update(changes)
    return a, meta


def patch_zip(data, signature, offset, value, size=2):
    """Overwrite a field in every zip header with the given signature (local b"PK\\3\\4", central b"PK\\1\\2")."""
    data = bytearray(data)
    start = data.find(signature)
    while start >= 0:
        data[start + offset:start + offset + size] = value.to_bytes(size, "little")
        start = data.find(signature, start + 4)
    return bytes(data)


def test_the_hand_written_valid_file_loads(tmp_path):
    model, meta = load_model(write_npz(tmp_path / "ok.npz", *valid()))
    assert model.params["0.W"].sum() == 12 and meta == {"format_version": 1}
    model, _ = load_model(write_npz(tmp_path / "ok64.npz", *valid(np.float64)))
    assert model.params["0.W"].dtype == np.float64


HOSTILE = {  # name: (arrays, meta) -> words of the error
    "architecture is a dict": (spec(architecture={"type": "Linear"}), "architecture must be a list of 1 to 1000 layer dicts, got dict"),
    "architecture is empty": (spec(architecture=[]), "got 0 layers"),
    "a million layers": (spec(architecture=[{"type": "ReLU"}] * 1001), "got 1001 layers"),
    "layer is a string": (spec(architecture=["Linear"]), "layer 0: expected a dict with a 'type' key, got str"),
    "unknown layer": (spec(architecture=[{"type": "os.system"}]), "unknown layer type 'os.system'"),
    "size is a string": (spec(architecture=[{"type": "Linear", "in_features": "4", "out_features": 3}]),
                         "in_features must be an integer >= 1, got '4'"),
    "size is a float": (spec(architecture=[{"type": "Linear", "in_features": 4.0, "out_features": 3}]),
                        "in_features must be an integer >= 1, got 4.0"),
    "argument is a list": (spec(architecture=[{"type": "Linear", "in_features": [4], "out_features": 3}]),
                           "argument 'in_features' = \\[4\\]; expected a number"),
    "gigantic layer": (spec(architecture=[{"type": "Linear", "in_features": 2 ** 20, "out_features": 2 ** 20}]),
                       "at most 268,435,456 per array"),
    "huge integer": (spec(architecture=[{"type": "Linear", "in_features": 10 ** 30, "out_features": 3}]),
                     "argument 'in_features' = 10000"),
    "spec and arrays disagree": (spec(architecture=[{"type": "Linear", "in_features": 5, "out_features": 3}]),
                                 r"'0.W' has shape \(4, 3\); the architecture implies \(5, 3\)"),
    "missing array": (({"0.W": np.ones((4, 3), np.float32)}, valid()[1]), r"missing \['0.b'\], unexpected \[\]"),
    "extra array": (spec({"1.W": np.ones(2, np.float32)}), r"unexpected \['1.W'\]"),
    "integer weights": (spec({"0.W": np.ones((4, 3), np.int64)}), "'0.W' has dtype int64; expected float32 or float64"),
    "boolean weights": (spec({"0.W": np.ones((4, 3), bool)}), "has dtype bool"),
    "complex weights": (spec({"0.W": np.ones((4, 3), np.complex64)}), "has dtype complex64"),
    "string weights": (spec({"0.W": np.full((4, 3), "abc")}), "has dtype <U3"),
    "structured weights": (spec({"0.W": np.zeros((4, 3), [("a", "<f4")])}), "has dtype .*expected float32 or float64"),
    "float16 weights": (spec({"0.W": np.ones((4, 3), np.float16)}), "has dtype float16"),
    "big-endian weights": (spec({"0.W": np.ones((4, 3), ">f4")}), "has dtype >f4"),
    "NaN weights": (spec({"0.W": np.full((4, 3), np.nan, np.float32)}), "'0.W' contains NaN or inf"),
    "inf bias": (spec({"0.b": np.full(3, np.inf, np.float32)}), "'0.b' contains NaN or inf"),
    "mixed dtypes": (spec({"0.b": np.zeros(3, np.float64)}), r"several dtypes \['float32', 'float64'\]"),
    "no record": (({"0.W": np.ones((4, 3), np.float32)}, None), "no '__meta__' JSON record"),
    "record not JSON": (({}, "{not json"), "is not valid JSON"),
    "record too deep": (({}, "[" * 100_000 + "]" * 100_000), "is not valid JSON"),
    "record is a list": (({}, "[1, 2]"), "unsupported checkpoint format 'list'"),
    "version true": (spec(format_version=True), "unsupported checkpoint format True"),
    "version 2": (spec(format_version=2), "unsupported checkpoint format 2; expected"),
    "bad layer argument": (({}, {"format_version": 1, "architecture": [{"type": "Dropout", "p": 1.5}]}),
                           r"Dropout: p must be in \[0, 1\)"),
    "rng in the spec": (spec(architecture=[{"type": "Dropout", "rng": 3}]), r"unknown arguments \['rng'\]"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_checkpoints_are_refused_before_building(name, tmp_path):
    (arrays, meta), message = HOSTILE[name]
    path = write_npz(tmp_path / "bad.npz", arrays, meta)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=message) as info:
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 20e6, f"{peak / 1e6:.0f} MB allocated to refuse the file"


def test_zip_level_attacks_are_refused(tmp_path):
    arrays, meta = valid()
    ok = write_npz(tmp_path / "ok.npz", arrays, meta).read_bytes()
    cases = {
        "encrypted": (patch_zip(patch_zip(ok, b"PK\x03\x04", 6, 1), b"PK\x01\x02", 8, 1), "is encrypted"),
        "bzip2": (write_npz(tmp_path / "b.npz", arrays, meta, zipfile.ZIP_BZIP2).read_bytes(),
                  r"compression method 12; expected stored or deflated, as np.savez writes \(zip methods 0 or 8\)"),
        "not an array": (write_npz(tmp_path / "t.npz", arrays, meta, extra=[("notes.txt", "hi")]).read_bytes(),
                         "member 'notes.txt' is not a .npy array"),
        "truncated": (ok[:len(ok) // 2], "not a readable .npz checkpoint"),
        "random bytes": (os.urandom(500), "not a readable .npz checkpoint"),
        "header lies about size": (patch_zip(ok, b"PK\x01\x02", 24, 2 ** 32 - 1, 4), "more than 2,147,483,648 bytes"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=message):
            load_model(path)


def test_a_zip_bomb_is_refused_from_its_headers(tmp_path):
    """A deflated member of 256 MB of zeros (256 KB on disk) claiming to be the weights."""
    _, meta = valid()
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__meta__.npy", _npy_bytes(np.array(json.dumps(meta))))
        with z.open("0.W.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((4, 3), "<f4"))
            zeros = bytes(2 ** 20)
            for _ in range(256):
                f.write(zeros)
        z.writestr("0.b.npy", _npy_bytes(np.zeros(3, np.float32)))
    assert path.stat().st_size < 2e6
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"'0.W': shape \(4, 3\) of float32 needs 48 bytes; the member holds"):
            load_model(path)
        assert tracemalloc.get_traced_memory()[1] < 20e6
    finally:
        tracemalloc.stop()
    with pytest.raises(CheckpointError, match="the member holds 268,435,456"):
        load_arrays(path)  # without an architecture: the size check still refuses it, unread


def _npy_header(shape, descr):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _npy_bytes(a):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, a, allow_pickle=False)
    return buffer.getvalue()


def test_a_fifo_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    result = {}

    def load():
        try:
            load_model(fifo)
        except CheckpointError as e:
            result["error"] = str(e)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "load_model hung on a FIFO"
    assert "is a FIFO; expected a checkpoint (a regular file)" in result["error"]
    with pytest.raises(CheckpointError, match=r"is a directory; expected a checkpoint \(a regular file\)"):
        load_arrays(tmp_path)  # a directory


def test_file_size_cap(tmp_path, monkeypatch):
    path = write_npz(tmp_path / "ok.npz", *valid())
    monkeypatch.setattr(checkpoint, "MAX_FILE_BYTES", 100)
    with pytest.raises(CheckpointError, match=r"more than the 100 bytes a checkpoint can have"):
        load_model(path)


def test_load_weights_never_casts_silently():
    model = mlp([3, 2], rng=0)
    arrays = {k: v.astype(np.float64) for k, v in model.params.items()}
    with pytest.raises(CheckpointError, match="float32 in the model but float64 in the file; dtypes are never converted"):
        load_weights(model, arrays)


def test_metadata_is_returned_as_recorded(tmp_path):
    """load_model does not re-verify metrics: a file may claim any accuracy (the docstring says so)."""
    save_model(mlp([3, 2], rng=0), tmp_path / "m.npz", metrics={"test_acc": 0.999})
    assert load_model(tmp_path / "m.npz")[1]["metrics"] == {"test_acc": 0.999}
    assert "not re-verified" in " ".join(load_model.__doc__.split())


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = time.time() - 3600
    files = {
        f".m.npz.{dead.pid}.abc123_x.tmp": (old, False),      # killed writer, old: removed
        ".m.npz.k2j4h5g6.tmp": (old, False),                 # older naming, no pid, old: removed
        f".m.npz.{dead.pid}.fresh123.tmp": (None, True),      # written to a moment ago: kept
        f".m.npz.{os.getpid()}.live1234.tmp": (old, True),    # its writer is alive: kept
        f".other.npz.{dead.pid}.abc123_x.tmp": (old, True),   # another target's: kept
    }
    for name, (mtime, _) in files.items():
        (tmp_path / name).write_bytes(b"partial")
        if mtime:
            os.utime(tmp_path / name, (mtime, mtime))
    save_model(mlp([3, 2], rng=0), tmp_path / "m.npz")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"m.npz"} | {name for name, (_, kept) in files.items() if kept}


RECORD = {"dataset": "fashion_mnist", "mean": 0.286, "std": 0.353, "image_shape": [1, 28, 28],
          "class_names": list(CLASS_NAMES), "experiment": {"name": "mlp_fashion"}, "metrics": {"val_acc": 0.5},
          "epoch": 1}


def conv_net(**conv):
    """A small conv net for 28x28 images, its first Conv2D built with the given stride or padding."""
    return Sequential([Conv2D(1, 2, 3, rng=0, **conv), ReLU(), MaxPool2D(2), Flatten(), Linear(2 * 13 * 13, 10, rng=0)])


@pytest.mark.parametrize("model, change, words", [
    (None, {"mean": "abc"}, ["mean = 'abc'", "a finite number in [0, 1]"]),
    (None, {"mean": 1e39}, ["mean = 1e+39", "a finite number in [0, 1]"]),
    (None, {"mean": float("nan")}, ["mean = nan", "finite"]),
    (None, {"std": 0}, ["std = 0", "a finite number in (0, 1]"]),
    (None, {"std": [1, 2, 3]}, ["std = [1, 2, 3]", "a finite number in (0, 1]"]),
    (None, {"std": float("inf")}, ["std = inf"]),
    (None, {"class_names": ["a", "b"]}, ["class_names = ['a', 'b']", "10 names, one per output"]),
    (None, {"class_names": 3}, ["class_names = 3", "a list of 10 names"]),
    (None, {"experiment": "text"}, ["experiment = 'text'", "a table"]),
    (None, {"experiment": {"name": 5}}, ["experiment.name = 5", "a text"]),
    (None, {"metrics": "x"}, ["metrics = 'x'", "a table"]),
    (None, {"metrics": {"val_acc": 7}}, ["metrics.val_acc = 7", "an accuracy in [0, 1]"]),
    (None, {"epoch": "one"}, ["epoch = 'one'", "an integer >= 0"]),
    (None, {"dataset": "evil"}, ["dataset = 'evil'", "one of 'fashion_mnist', 'cifar10'"]),
    (None, {"dataset": "cifar10", "image_shape": [3, 32, 32]}, ["dataset = 'cifar10'", "in_features = 784",
                                                                "3072"]),
    (None, {"image_shape": [3, 32, 32]}, ["image_shape = [3, 32, 32]", "[1, 28, 28], the shape of a fashion_mnist"]),
    (None, {"image_shape": "28x28"}, ["image_shape = '28x28'", "[channels, height, width]"]),
    (lambda: mlp([784, 8, 3], rng=0), {"class_names": ["a", "b", "c"]}, ["dataset = 'fashion_mnist'",
                                                                          "3 classes"]),
    (lambda: conv_net(padding=2 ** 28), {}, ["layer 0 (Conv2D), padding = 268435456", "0..2"]),
    (lambda: conv_net(padding=2 ** 20), {}, ["padding = 1048576", "below the kernel size 3"]),
    (lambda: conv_net(stride=2 ** 28), {}, ["layer 0 (Conv2D), stride = 268435456", "an integer in 1..26"]),
    (lambda: conv_net(stride=20), {}, ["layer 4 (Linear), in_features = 338", "expected 2"]),
    (lambda: conv_net(), {"dataset": "cifar10", "image_shape": [3, 32, 32]}, ["dataset = 'cifar10'",
                                                                              "in_channels = 1"]),
], ids=["mean-text", "mean-huge", "mean-nan", "std-0", "std-list", "std-inf", "class-names-2", "class-names-number",
        "experiment-text", "experiment-name", "metrics-text", "val-acc-7", "epoch-text", "dataset-evil",
        "dataset-cifar-on-784", "image-shape-other", "image-shape-text", "classes-3", "padding-2**28",
        "padding-2**20", "stride-2**28", "stride-20", "conv-on-cifar"])
def test_the_record_is_checked_against_the_model_before_anything_runs(model, change, words, tmp_path):
    path = tmp_path / "m.npz"
    save_model((model or (lambda: mlp([784, 8, 10], rng=0)))(), path, **{**RECORD, **change})
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    message = str(e.value)
    assert message.startswith(f"{path}: refused to load: the record's "), message
    for w in words:
        assert w in message, message


def test_a_valid_record_loads_unchanged(tmp_path):
    for model in (mlp([784, 8, 10], rng=0), conv_net(), lenet5()):
        save_model(model, tmp_path / "m.npz", **RECORD)
        assert load_model(tmp_path / "m.npz")[1]["class_names"] == list(CLASS_NAMES)
