"""Bad and hostile data files: a table of each bad input with the words of its message, and
property-based tests (Hypothesis) that feed random bytes and random mutations of valid files
to the IDX, CIFAR-10 and prepared-.npz readers.

Every reader must either return a valid result or raise the project's DataFileError, within
a time bound (Hypothesis' deadline, an alarm for the FIFOs) and a memory bound (tracemalloc).
"""
import gzip
import io
import math
import os
import signal
import struct
import tarfile
import tempfile
import tracemalloc
import warnings
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utils.core import datasets as data
from utils.core import prepared
from utils.core.datasets import CIFAR10_CLASSES, load_cifar10, read_cifar10_batch, read_idx
from utils.core.prepared import load_prepared
from utils.plumbing.errors import DataFileError

# No example database: it would write .hypothesis/ into the repository. Derandomized: every
# run tries the same inputs, so a failure is reproducible and a passing suite stays passing.
# The deadline catches a reader that hangs, with room for a loaded machine's pauses.
FUZZ = settings(max_examples=120, deadline=timedelta(seconds=30), database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
META = ("\n".join(CIFAR10_CLASSES) + "\n\n").encode()


def idx_bytes(X, type_code=0x08):
    """The IDX encoding of X (uint8 unless told), written independently of the parser under test."""
    header = struct.pack(">BBBB", 0, 0, type_code, X.ndim) + struct.pack(f">{X.ndim}I", *X.shape)
    return header + X.tobytes()


def cifar_records(n, seed=0):
    rng = np.random.default_rng(seed)
    return b"".join(bytes([int(rng.integers(10))]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()
                    for _ in range(n))


def tar_bytes(members, compress=True):
    """members: [(name, bytes)] -> a tar (gzipped unless told) with them under cifar-10-batches-bin/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue(), mtime=0) if compress else buffer.getvalue()


CIFAR_MEMBERS = [(f, cifar_records(1, seed=i)) for i, f in enumerate(FILES)] + [("batches.meta.txt", META)]


def npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def bounded(fn, *args, max_bytes=8 * 2**20):
    """fn(*args), asserting it allocates at most max_bytes at its peak; DataFileError passes through."""
    tracemalloc.start()
    try:
        return fn(*args)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= max_bytes, f"{fn.__name__} peaked at {peak:,} bytes"


@pytest.fixture
def alarm():
    """Fail, rather than hang, a test that blocks for 10 s (e.g. on opening a FIFO)."""
    def ring(*_):
        raise TimeoutError("the reader blocked: it must refuse a FIFO without opening it for reading")
    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ---- a table of bad inputs, each with the words its message must contain


def sparse(path, size):
    """A file of size bytes that takes no disk space (a hole)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def fifo(path):
    os.mkfifo(path)
    return path


IDX_CASES = {
    "FIFO": (lambda d: fifo(d / "x.gz"), {}, r"x\.gz: is a FIFO; expected an IDX file"),
    "directory": (lambda d: (d / "x.gz").mkdir() or d / "x.gz", {}, "is a directory; expected an IDX file"),
    "character device": (lambda d: Path("/dev/null"), {}, "/dev/null: is a character device"),
    "file too large": (lambda d: sparse(d / "x", 200), {"max_bytes": 100}, "200 bytes, more than the 100 bytes"),
    "shape larger than the cap": (lambda d: b"\0\0\x08\x02" + struct.pack(">2I", 60000, 10**6),
                                  {}, r"shape \(60000, 1000000\) needs 60,000,000,012 bytes, more than"),
    "a zero dimension beside huge ones": (
        lambda d: (d / "zero.idx").write_bytes(b"\0\0\x08\x03" + struct.pack(">3I", 0, 2**32 - 1, 2**32 - 1))
        and d / "zero.idx", {}, r"zero\.idx: shape \(0, 4294967295, 4294967295\) in the header: its non-zero "
                                r"dimensions alone need 18,446,744,065,119,617,025 bytes, more than"),
    "a zero dimension beside large ones": (
        lambda d: (d / "zero.idx").write_bytes(b"\0\0\x08\x03" + struct.pack(">3I", 70000, 0, 70000))
        and d / "zero.idx", {}, r"zero\.idx: shape \(70000, 0, 70000\) in the header.*expected a real image shape"),
    "gzip bomb behind a small header": (
        lambda d: gzip.compress(idx_bytes(np.zeros((1, 28, 28), np.uint8)) + bytes(2**24)),
        {}, "trailing bytes: shape \\(1, 28, 28\\) needs 800 bytes, found more than 800"),
    "garbage after the gzip stream": (lambda d: gzip.compress(idx_bytes(np.zeros(3, np.uint8))) + b"garbage",
                                      {}, "corrupt gzip data \\(trailing garbage"),
    "gzip stream cut short": (lambda d: gzip.compress(idx_bytes(np.zeros(3000, np.uint8)))[:30],
                              {}, "corrupt gzip data \\(truncated"),
}


@pytest.mark.parametrize("case", IDX_CASES)
def test_bad_idx_input_names_what_was_expected(case, tmp_path, alarm):
    make, kwargs, words = IDX_CASES[case]
    source = make(tmp_path)
    with pytest.raises(DataFileError, match=words):
        bounded(read_idx, source, None, None, None, *kwargs.values())


def test_two_gzip_members_and_zero_padding_read_as_gzip_decompress_does():
    raw = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 20))
    np.testing.assert_array_equal(read_idx(gzip.compress(raw[:10]) + gzip.compress(raw[10:]) + bytes(16)),
                                  np.arange(60).reshape(3, 20))


def write_cifar_folder(folder, members=CIFAR_MEMBERS):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in members:
        (folder / name).write_bytes(content)
    return folder


def replace_member(name, content):
    return [(n, content if n == name else c) for n, c in CIFAR_MEMBERS]


CIFAR_CASES = {
    "class list not UTF-8": (lambda d: write_cifar_folder(d, replace_member("batches.meta.txt", b"\xff\xfeplane")),
                             r"batches\.meta\.txt: not UTF-8 text .*expected the ten class names"),
    "class list not UTF-8, in the tarball": (
        lambda d: (d / data.CIFAR10_TAR).write_bytes(tar_bytes(replace_member("batches.meta.txt", b"\xc3("))),
        r"tar\.gz: batches\.meta\.txt: not UTF-8 text"),
    "batch larger than the official one": (
        lambda d: write_cifar_folder(d) and sparse(d / "data_batch_2.bin", data.CIFAR10_BATCH_BYTES + 3073),
        r"data_batch_2\.bin: 30,733,073 bytes, more than the 30,730,000 bytes a CIFAR-10 batch can have"),
    "batch is a FIFO": (lambda d: write_cifar_folder(d, CIFAR_MEMBERS[:5] + CIFAR_MEMBERS[6:])
                        and fifo(d / "test_batch.bin"),
                        r"test_batch\.bin: is a FIFO; expected a CIFAR-10 batch"),
    "batch is a directory": (lambda d: write_cifar_folder(d, CIFAR_MEMBERS[1:]) and (d / FILES[0]).mkdir(),
                             r"data_batch_1\.bin: is a directory"),
    "tarball too large": (lambda d: sparse(d / data.CIFAR10_TAR, data.CIFAR10_TAR_BYTES + 1),
                          "more than the 209,715,200 bytes the CIFAR-10 tarball can have"),
    "tar member too large": (
        lambda d: (d / data.CIFAR10_TAR).write_bytes(tar_bytes(replace_member("data_batch_3.bin",
                                                                              bytes(data.CIFAR10_BATCH_BYTES + 1)))),
        r"member cifar-10-batches-bin/data_batch_3\.bin is 30,730,001 bytes, more than the 30,730,000"),
    "too many tar entries": (
        lambda d: (d / data.CIFAR10_TAR).write_bytes(tar_bytes([(f"x{i}", b"") for i in range(70)] + CIFAR_MEMBERS)),
        "more than 64 entries"),
    "tar member is a FIFO, not a file": (
        lambda d: (d / data.CIFAR10_TAR).write_bytes(_tar_with_fifo()), r"missing data_batch_1\.bin"),
}


def _tar_with_fifo():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"cifar-10-batches-bin/{FILES[0]}")
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
        for name, content in CIFAR_MEMBERS[1:]:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.mark.parametrize("case", CIFAR_CASES)
def test_bad_cifar10_input_names_what_was_expected(case, tmp_path, alarm):
    make, words = CIFAR_CASES[case]
    make(tmp_path)
    with pytest.raises(DataFileError, match=words):
        bounded(load_cifar10, tmp_path, False, max_bytes=64 * 2**20)


def test_tar_bomb_in_an_unwanted_member_stops_at_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CIFAR10_UNPACKED_BYTES", 2**20)
    (tmp_path / data.CIFAR10_TAR).write_bytes(tar_bytes([("readme.html", bytes(4 * 2**20)), *CIFAR_MEMBERS]))
    with pytest.raises(DataFileError, match="decompresses to more than 1,048,576 bytes"):
        bounded(load_cifar10, tmp_path, False, max_bytes=4 * 2**20)


def with_flag(zip_bytes, flag):
    """Set a general-purpose flag bit (1: encrypted) in every local and central header."""
    b = bytearray(zip_bytes)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = b.find(signature)
        while i >= 0:
            b[i + offset] |= flag
            i = b.find(signature, i + 4)
    return bytes(b)


def zip_with(members, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": wanted here
        for name, content in members:
            z.writestr(name, content)
    return buffer.getvalue()


NPY = npz_bytes(x=np.arange(4.0))
X_NPY = zipfile.ZipFile(io.BytesIO(NPY)).read("x.npy")


def npy_claiming(shape, content):
    """A .npy member whose header announces shape (float64) but which holds content."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + content


LYING_NPY = npy_claiming((10**10,), bytes(32))
UNBALANCED = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3,".ljust(53) + b"\n"  # numpy's tokenizer fails

NPZ_CASES = {
    "not a zip": (b"PK but not a zip at all", "not a zip archive"),
    "empty file": (b"", "not a zip archive"),
    "a member that is not an array": (zip_with([("x.npy", X_NPY), ("notes.txt", b"hello")]),
                                      r"member 'notes\.txt' is not a \.npy array"),
    "encrypted member": (with_flag(NPY, 0x1), r"member 'x\.npy' is encrypted"),
    "bzip2 compression": (zip_with([("x.npy", X_NPY)], zipfile.ZIP_BZIP2),
                          "uses compression method 12; expected stored or deflated"),
    "pickled objects": (npz_bytes(names=np.array([None, 1], dtype=object)), "holds Python objects"),
    "header larger than its data": (zip_with([("x.npy", LYING_NPY)]),
                                    r"header announces shape \(10000000000,\) of float64 \(80,000,000,000 bytes\)"),
    "header that does not parse": (zip_with([("x.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 54) + UNBALANCED
                                              + bytes(24))]), "unreadable .*EOF in multi-line statement"),
    "a member twice": (zip_with([("x.npy", X_NPY), ("x.npy", X_NPY)]), r"member 'x\.npy' appears twice"),
    "more data than the header declares": (zip_with([("x.npy", X_NPY + bytes(8))]), "more than its header declares"),
    "too many members": (npz_bytes(**{f"a{i}": np.zeros(1) for i in range(70)}), "expected an .npz of at most 64"),
    "bad magic in a member": (zip_with([("x.npy", b"NOTNUMPY" + X_NPY[8:])]),
                              "unreadable .*expected a prepared data set"),
    "corrupt deflate data": (zip_with([("x.npy", X_NPY)], zipfile.ZIP_DEFLATED)[:60] + bytes(40)
                             + zip_with([("x.npy", X_NPY)], zipfile.ZIP_DEFLATED)[100:], "unreadable"),
    "image_shape not three sizes": (npz_bytes(image_shape=np.array([28, 28])), "image_shape is .* expected three"),
    "class_names not strings": (npz_bytes(class_names=np.arange(10)), "class_names must be a list of strings"),
    "num_classes disagrees": (npz_bytes(class_names=np.array(["a", "b"]), num_classes=np.array(3)),
                              "num_classes is 3, expected a positive integer equal to the number of class names"),
    "images of another shape": (npz_bytes(X_train=np.zeros((2, 5)), image_shape=np.array([1, 28, 28])),
                                r"X_train holds samples of shape \(5,\), expected \(1, 28, 28\)"),
    "images as strings": (npz_bytes(X_val=np.array([["a"]])), "X_val is <U1 of shape .*expected floating-point"),
    "labels out of range": (npz_bytes(y_test=np.array([0, 10]), num_classes=np.array(10)),
                            r"y_test must be integer labels \(N,\) in 0\.\.num_classes - 1"),
    "negative labels": (npz_bytes(y_train=np.array([-1, 0])), "y_train must be integer labels"),
    "more images than labels": (npz_bytes(X_train=np.zeros((3, 2)), y_train=np.arange(2)),
                                "X_train holds 3 samples but y_train holds 2 labels"),
}


@pytest.mark.parametrize("case", NPZ_CASES)
def test_bad_prepared_file_names_what_was_expected(case, tmp_path):
    content, words = NPZ_CASES[case]
    path = tmp_path / "prepared.npz"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=f"prepared.npz: .*{words}"):
        bounded(load_prepared, path)


def test_prepared_file_caps_and_special_files(tmp_path, monkeypatch, alarm):
    path = tmp_path / "prepared.npz"
    np.savez_compressed(path, X=np.zeros(1000))  # a small file that unpacks to 8 kB
    monkeypatch.setattr(prepared, "MAX_PREPARED_BYTES", 4000)
    with pytest.raises(DataFileError, match="its members unpack to more than 4,000 bytes"):
        load_prepared(path)
    sparse(path, 5000)
    with pytest.raises(DataFileError, match="5,000 bytes, more than the 4,000 bytes a prepared data set"):
        load_prepared(path)
    path.unlink()
    fifo(path)
    with pytest.raises(DataFileError, match="is a FIFO; expected a prepared data set"):
        load_prepared(path)


# ---- property-based: random bytes and random mutations of valid files


@st.composite
def mutated(draw, valid):
    """valid bytes with a few random changes: bytes overwritten, a cut, an insertion, junk appended."""
    b = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["overwrite", "cut", "insert", "append"]))
        at = draw(st.integers(0, max(len(b) - 1, 0)))
        if kind == "overwrite" and b:
            b[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del b[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            b[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            b += draw(st.binary(min_size=1, max_size=64))
    return bytes(b)


VALID_IDX = idx_bytes(np.arange(2 * 5 * 4, dtype=np.uint8).reshape(2, 5, 4))


def idx_inputs():
    header = st.tuples(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]), st.integers(0, 4)).flatmap(
        lambda t: st.lists(st.integers(0, 2**32 - 1), min_size=t[1], max_size=t[1]).map(
            lambda shape: bytes([0, 0, t[0], t[1]]) + struct.pack(f">{t[1]}I", *shape)))
    raw = st.one_of(st.binary(max_size=300), mutated(VALID_IDX),
                    st.tuples(header, st.binary(max_size=200)).map(b"".join))
    return st.one_of(raw, raw.map(lambda b: gzip.compress(b, mtime=0)), mutated(gzip.compress(VALID_IDX, mtime=0)))


@FUZZ
@given(idx_inputs())
def test_read_idx_returns_a_valid_array_or_raises_data_file_error(blob):
    try:
        X = bounded(read_idx, blob)
    except DataFileError:
        return
    assert X.dtype.isnative and X.flags.writeable and X.ndim == blob_ndim(blob)


def blob_ndim(blob):
    return (gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob)[3]


@FUZZ
@given(st.one_of(st.binary(max_size=7000), mutated(cifar_records(2))))
def test_read_cifar10_batch_returns_images_and_labels_or_raises(blob):
    try:
        X, y = bounded(read_cifar10_batch, blob, "batch", False)
    except DataFileError:
        return
    assert X.shape == (len(y), 3, 32, 32) and X.dtype == np.uint8 and y.min() >= 0 and y.max() <= 9


VALID_TAR = tar_bytes(CIFAR_MEMBERS, compress=False)


@FUZZ
@given(st.one_of(st.binary(max_size=2000).map(gzip.compress), mutated(gzip.compress(VALID_TAR, mtime=0)),
                 mutated(VALID_TAR).map(lambda b: gzip.compress(b, mtime=0))))
def test_load_cifar10_returns_the_data_set_or_raises(blob):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / data.CIFAR10_TAR).write_bytes(blob)
        try:
            (X_train, y_train), (X_test, y_test) = bounded(load_cifar10, folder, False)
        except DataFileError:
            return
    assert X_train.shape[1:] == X_test.shape[1:] == (3, 32, 32) and len(X_train) == len(y_train) == 5
    assert y_train.max() <= 9 and y_test.max() <= 9


VALID_NPZ = npz_bytes(X_train=np.arange(12, dtype=np.float32).reshape(3, 4), y_train=np.arange(3) % 2,
                      mean=np.array(0.5), class_names=np.array(["a", "b"]), image_shape=np.array([1, 2, 2]),
                      num_classes=np.array(2))


@FUZZ
@given(st.one_of(st.binary(max_size=600), mutated(VALID_NPZ), mutated(zip_with(
    [(n, zipfile.ZipFile(io.BytesIO(VALID_NPZ)).read(n)) for n in zipfile.ZipFile(io.BytesIO(VALID_NPZ)).namelist()],
    zipfile.ZIP_DEFLATED)), mutated(VALID_NPZ).map(lambda b: b[:100] + b[100:].replace(b"(3, 4)", b"(9999999999, 4)"))))
def test_load_prepared_returns_arrays_or_raises(blob):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.npz"
        path.write_bytes(blob)
        try:
            out = bounded(load_prepared, path)
        except DataFileError:
            return
    for k, v in out.items():
        assert isinstance(v, (np.ndarray, int, float, str, bool, tuple)), k
        if isinstance(v, np.ndarray):
            assert v.dtype != object and math.prod(v.shape) * v.itemsize <= len(blob) * 1100
