"""Property-based tests: whatever bytes a checkpoint holds, load_model either returns a valid model
or raises CheckpointError (a ValueError), quickly and within a small memory bound."""
import io
import json
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utils.core.checkpoint import load_model, save_model
from utils.core.models import Sequential, mlp
from utils.plumbing.errors import CheckpointError

# No wall-clock deadline: on a loaded machine a descheduled example is not a slow loader.
SETTINGS = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CPU_SECONDS, PEAK_BYTES = 3.0, 50e6  # a crafted file must not make loading slow or big


def _valid_bytes():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.npz"
        save_model(mlp([4, 3, 2], "tanh", dropout=0.1, rng=0), path, metrics={"val_acc": 0.5})
        return path.read_bytes()


VALID = _valid_bytes()
MEMBERS = set(zipfile.ZipFile(io.BytesIO(VALID)).namelist())
X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)


def check_loads_or_refuses(data):
    """Write data to a file and load it: a usable model or CheckpointError, within the bounds."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.npz"
        path.write_bytes(data)
        tracemalloc.start()
        start = time.process_time()
        try:
            model, meta = load_model(path)
        except CheckpointError as e:
            assert str(path) in str(e)
            model = None
        finally:
            seconds, peak = time.process_time() - start, tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert seconds < CPU_SECONDS and peak < PEAK_BYTES, (seconds, peak)
    if model is not None:  # what loads is a real model with finite float weights
        assert isinstance(model, Sequential) and isinstance(meta, dict)
        assert all(p.dtype in (np.float32, np.float64) and np.isfinite(p).all() for p in model.params.values())
        if model.config() == mlp([4, 3, 2], "tanh", dropout=0.1).config():
            assert np.isfinite(model.predict_proba(X)).all()


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes(data):
    check_loads_or_refuses(data)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_after_a_zip_signature(data):
    check_loads_or_refuses(b"PK\x03\x04" + data)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.none() | st.integers(1, len(VALID)))
def test_random_mutations_of_a_valid_file(flips, length):
    data = bytearray(VALID)
    for position, value in flips:
        data[position] = value
    check_loads_or_refuses(bytes(data[:length]))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy parsing a header with a bad escape
@SETTINGS
@given(st.sampled_from(sorted(MEMBERS)), st.integers(0, 127), st.binary(min_size=1, max_size=8))
def test_random_overwrites_of_a_member_header(member, offset, patch):
    """Bytes of one .npy header overwritten, with the zip's CRC fixed, so the reader parses the damage."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(VALID)) as source, zipfile.ZipFile(buffer, "w") as z:
        for name in source.namelist():
            data = bytearray(source.read(name))
            if name == member:
                data[offset:offset + len(patch)] = patch
            z.writestr(name, bytes(data))
    check_loads_or_refuses(buffer.getvalue())


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 40, 2 ** 40) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)
LAYER = st.fixed_dictionaries({"type": st.sampled_from(["Linear", "ReLU", "Conv2D", "Dropout", "Flatten", "Nope", 3])},
                              optional={"in_features": JSON | st.integers(-3, 2 ** 31),
                                        "out_features": JSON | st.integers(-3, 2 ** 31),
                                        "in_channels": st.integers(-1, 9), "out_channels": st.integers(-1, 9),
                                        "kernel_size": st.integers(-1, 9), "p": JSON, "init": JSON})
ARRAY = st.sampled_from(["float32", "float64", "int32", "bool", "complex64", "<U2", ">f4", "float16"]).flatmap(
    lambda dtype: st.lists(st.integers(0, 5), max_size=3).map(lambda shape: np.ones(shape, dtype)))


@SETTINGS
@given(st.one_of(JSON, st.lists(LAYER, max_size=4)), st.dictionaries(st.sampled_from(["0.W", "0.b", "2.W", "x"]), ARRAY),
       st.sampled_from([1, 1.0, True, "1", None]))
def test_random_architectures_and_arrays(architecture, arrays, version):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        meta = json.dumps({"format_version": version, "architecture": architecture})
        for name, a in {**arrays, "__meta__": np.array(meta)}.items():
            with z.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, a, allow_pickle=False)
    check_loads_or_refuses(buffer.getvalue())


def test_the_unmutated_file_loads():
    model, meta = load_model(_write(VALID))
    assert meta["metrics"] == {"val_acc": 0.5} and np.isfinite(model.predict_proba(X)).all()


def _write(data):
    path = Path(tempfile.mkdtemp()) / "m.npz"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data", [b"", b"PK\x05\x06" + bytes(18), VALID[:30]])
def test_degenerate_files(data):
    check_loads_or_refuses(data)
