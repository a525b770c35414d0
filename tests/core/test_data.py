"""Tests for utils/core/datasets.py: the IDX parser on tiny files written here, the real
Fashion-MNIST files when present, the preprocessing helpers and save/load."""
import gzip
import hashlib
import struct

import numpy as np
import pytest

from utils.core import datasets as data
from utils.core.datasets import CLASS_NAMES, SHA256, fetch_fashion_mnist, load_fashion_mnist, read_idx
from utils.core.prepared import load_prepared, prepare_fashion_mnist, save_prepared
from utils.core.preprocess import flatten, scale, standardize, stratified_split


def idx_bytes(X):
    """The IDX encoding of X, written independently of the parser under test."""
    type_code = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B}[X.dtype]
    header = struct.pack(">BBBB", 0, 0, type_code, X.ndim) + struct.pack(f">{X.ndim}I", *X.shape)
    return header + X.astype(X.dtype.newbyteorder(">")).tobytes()


def write_tiny_set(folder, n_train=30, n_test=10, seed=0):
    """Write the four Fashion-MNIST file names with tiny random contents; return the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = (np.arange(n) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for name, X in arrays.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(X)))
    return arrays


def real_data_available():
    return all(any((d / f"{n}.gz").is_file() for d in (data.fashion_dir(), data.DEBIAN_DIR))
               for n in SHA256)


needs_real = pytest.mark.skipif(
    not real_data_available(),
    reason=f"Fashion-MNIST not in {data.fashion_dir()} or {data.DEBIAN_DIR}; "
           "run `python -m utils data` to download it")


@pytest.fixture(scope="module")
def real():
    return load_fashion_mnist()


# ---- real data


@needs_real
def test_real_shapes_and_dtypes(real):
    (X_train, y_train), (X_test, y_test) = real
    assert X_train.shape == (60000, 28, 28) and X_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert X_train.dtype == X_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    assert X_train.flags.writeable and X_train.flags.c_contiguous


@needs_real
def test_real_label_counts(real):
    (_, y_train), (_, y_test) = real
    assert len(CLASS_NAMES) == 10 and CLASS_NAMES[0] == "T-shirt/top" and CLASS_NAMES[9] == "Ankle boot"
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


@needs_real
def test_real_checksums_are_checked():
    path = fetch_fashion_mnist()["t10k-labels-idx1-ubyte"]
    assert read_idx(path, SHA256["t10k-labels-idx1-ubyte"], ndim=1).shape == (10000,)
    with pytest.raises(ValueError, match="checksum mismatch"):
        read_idx(path, SHA256["train-labels-idx1-ubyte"])


@needs_real
def test_prepare_real():
    assert "X_test" not in prepare_fashion_mnist(val_size=59000)  # the test split only when asked
    d = prepare_fashion_mnist(include_test=True)
    assert d["X_train"].shape == (54000, 784) and d["X_val"].shape == (6000, 784)
    assert d["X_test"].shape == (10000, 784)
    for k in ("X_train", "X_val", "X_test"):
        assert d[k].dtype == np.float32 and d[k].flags.c_contiguous
    assert np.bincount(d["y_val"]).tolist() == [600] * 10
    assert np.bincount(d["y_train"]).tolist() == [5400] * 10
    assert abs(d["X_train"].mean()) < 1e-4 and abs(d["X_train"].std() - 1) < 1e-4
    assert isinstance(d["mean"], float) and 0.28 < d["mean"] < 0.29
    assert isinstance(d["std"], float) and 0.35 < d["std"] < 0.36


@needs_real
def test_prepare_real_not_flat():
    d = prepare_fashion_mnist(val_size=1000, seed=1, flat=False, include_test=True)
    assert d["X_train"].shape == (59000, 1, 28, 28) and d["X_val"].shape == (1000, 1, 28, 28)
    assert d["X_test"].shape == (10000, 1, 28, 28) and d["X_test"].flags.c_contiguous


@needs_real
def test_main_reports_shapes(capsys):
    data.main([])
    out = capsys.readouterr().out
    assert "checksums OK" in out and "(60000, 28, 28)" in out


# ---- the IDX parser on tiny synthetic files


def test_read_idx_round_trip(tmp_path):
    X = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    raw = idx_bytes(X)
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "x").write_bytes(raw)
    for source in (tmp_path / "x.gz", str(tmp_path / "x"), raw, gzip.compress(raw)):
        out = read_idx(source, ndim=3)
        assert out.dtype == np.uint8 and np.array_equal(out, X) and out.flags.writeable
    assert np.array_equal(read_idx(raw, hashlib.sha256(raw).hexdigest()), X)


def test_read_idx_other_dtypes():
    y = np.array([-300, 0, 7, 32000], dtype=np.int16)
    out = read_idx(idx_bytes(y))
    assert out.dtype == np.int16 and np.array_equal(out, y)


def test_truncated_file_names_file(tmp_path):
    path = tmp_path / "short-images.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-1]))
    with pytest.raises(ValueError, match=r"short-images\.gz: truncated.*2368 bytes, found 2367"):
        read_idx(path)
    with pytest.raises(ValueError, match="truncated header"):
        read_idx(idx_bytes(np.zeros((3, 28, 28), np.uint8))[:10])


def test_trailing_bytes():
    with pytest.raises(ValueError, match="trailing bytes"):
        read_idx(idx_bytes(np.zeros(4, np.uint8)) + b"\0")


def test_wrong_magic(tmp_path):
    path = tmp_path / "not-idx"
    path.write_bytes(b"\x08\x03\x00\x00" + bytes(100))
    with pytest.raises(ValueError, match=r"not-idx: not an IDX file.*found 0x08030000"):
        read_idx(path)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(b"\x00\x00\x42\x01" + bytes(8))  # unknown type code


def test_labels_where_images_expected(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match=r"labels: expected 3 dimensions.*found 1 \(magic 0x00000801\)"):
        read_idx(path, ndim=3)


@pytest.mark.parametrize("damage", ["bad crc", "cut", "junk"])
def test_corrupt_gzip(tmp_path, damage):
    gz = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    gz = {"bad crc": gz[:-8] + bytes(8), "cut": gz[:len(gz) // 2], "junk": gz[:2] + b"junk" * 10}[damage]
    path = tmp_path / "broken.gz"
    path.write_bytes(gz)
    with pytest.raises(ValueError, match=r"broken\.gz: corrupt gzip"):
        read_idx(path)


def test_checksum_mismatch(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8))))
    with pytest.raises(ValueError, match=r"labels\.gz: checksum mismatch: expected SHA-256 0{64}, found"):
        read_idx(path, "0" * 64)


# ---- load_fashion_mnist on tiny files


def test_load_tiny_set(tmp_path):
    arrays = write_tiny_set(tmp_path)
    (X_train, y_train), (X_test, y_test) = load_fashion_mnist(tmp_path, verify=False)
    assert np.array_equal(X_train, arrays["train-images-idx3-ubyte"])
    assert np.array_equal(y_test, arrays["t10k-labels-idx1-ubyte"]) and y_test.dtype == np.int64
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_fashion_mnist(tmp_path)  # verify is on by default


def test_labels_out_of_range(tmp_path):
    write_tiny_set(tmp_path)
    y = (np.arange(30) % 11).astype(np.uint8)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(y)))
    expected = r"train-labels-idx1-ubyte\.gz: expected uint8 labels in 0\.\.9, found uint8 up to 10"
    with pytest.raises(ValueError, match=expected):
        load_fashion_mnist(tmp_path, verify=False)


def test_image_label_count_mismatch(tmp_path):
    write_tiny_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(9, np.uint8))))
    with pytest.raises(ValueError, match="holds 10 images but .* holds 9 labels"):
        load_fashion_mnist(tmp_path, verify=False)


def test_wrong_image_size(tmp_path):
    write_tiny_set(tmp_path)
    X = np.zeros((10, 14, 14), np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(X)))
    with pytest.raises(ValueError, match="expected uint8 images of 28x28, found uint8 of 14x14"):
        load_fashion_mnist(tmp_path, verify=False)


def test_data_dir_missing_files_names_folder(tmp_path):
    folder = tmp_path / "my-folder"
    with pytest.raises(FileNotFoundError, match="my-folder"):
        load_fashion_mnist(folder)
    write_tiny_set(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing in .*my-folder: t10k-labels-idx1-ubyte\.gz$"):
        load_fashion_mnist(folder, verify=False)


@pytest.fixture
def fake_server(tmp_path, monkeypatch):
    """Point the download at a local folder (file:// URL) and hide the real sources."""
    server = tmp_path / "server"
    arrays = write_tiny_set(server)
    monkeypatch.setattr(data, "URL", server.as_uri() + "/")
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path))  # downloads go to tmp_path / "fashion"
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    return server, tmp_path / "fashion", arrays


def test_download_writes_checked_files(fake_server):
    server, dest, arrays = fake_server
    paths = fetch_fashion_mnist(verify=False)
    assert set(paths) == set(SHA256) and all(p.parent == dest for p in paths.values())
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{n}.gz" for n in SHA256)  # no .part left
    (X_train, _), _ = load_fashion_mnist(verify=False)  # now found in data.fashion_dir()
    assert np.array_equal(X_train, arrays["train-images-idx3-ubyte"])


def test_download_with_bad_checksum_writes_nothing(fake_server):
    _, dest, _ = fake_server
    with pytest.raises(ValueError, match="checksum mismatch"):
        fetch_fashion_mnist()
    assert not dest.exists() or not any(dest.iterdir())


def test_download_failure_explains(fake_server, monkeypatch, tmp_path):
    monkeypatch.setattr(data, "URL", (tmp_path / "nowhere").as_uri() + "/")
    with pytest.raises(OSError, match="could not download .* dataset-fashion-mnist"):
        fetch_fashion_mnist()


def test_main_error_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        data.main(["--data-dir", str(tmp_path)])
    assert e.value.code == 1 and "error: Fashion-MNIST files missing" in capsys.readouterr().err


# ---- preprocessing


def test_scale():
    X = np.array([[0, 51], [128, 255]], dtype=np.uint8)
    out = scale(X)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert np.allclose(out, [[0, 0.2], [128 / 255, 1]]) and out[1, 1] == 1
    X_big = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    out = scale(X_big[:, ::2, ::3])  # a strided view in, a contiguous copy out
    assert out.shape == (4, 14, 10) and out.flags.c_contiguous
    assert not np.shares_memory(scale(X), X)
    with pytest.raises(TypeError, match="uint8"):
        scale(out)  # already scaled


def test_standardize_uses_train_stats_only():
    rng = np.random.default_rng(0)
    X_train = rng.normal(3, 2, (500, 8)).astype(np.float32)
    X_other = X_train + 10
    X_train_copy = X_train.copy()
    Z_train, Z_other, mean, std = standardize(X_train, X_other)
    assert abs(Z_train.mean()) < 1e-5 and abs(Z_train.std() - 1) < 1e-5
    assert np.allclose(Z_other, Z_train + 10 / std, atol=1e-5)  # shifted, not re-centred
    assert isinstance(mean, float) and np.isclose(mean, X_train.mean())
    assert isinstance(std, float) and np.isclose(std, X_train.std())
    assert np.array_equal(X_train, X_train_copy)  # inputs untouched
    for Z in (Z_train, Z_other):
        assert Z.dtype == np.float32 and Z.flags.c_contiguous


def test_standardize_is_global_and_float32():
    X = np.zeros((10, 4, 4), np.uint8)
    X[:, 1:3, 1:3] = np.arange(10, dtype=np.uint8)[:, None, None]  # constant border, like Fashion-MNIST
    Z, mean, std = standardize(X)
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    assert np.isclose(mean, X.mean()) and np.isclose(std, X.std())
    with pytest.raises(ValueError, match="constant"):
        standardize(np.ones((3, 2), np.float32))


def test_flatten():
    X = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    out = flatten(X.transpose(0, 2, 1, 3))
    assert out.shape == (2, 60) and out.dtype == np.float32 and out.flags.c_contiguous
    assert np.array_equal(out[1], X[1].transpose(1, 0, 2).ravel())


def make_labels(counts):
    return np.repeat(np.arange(len(counts)), counts)


def test_split_deterministic_per_seed():
    y = make_labels([40, 40, 20])
    X = np.arange(len(y))
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a = stratified_split(X, y, val_size=10, seed=7)
    b = stratified_split(X, y, val_size=10, seed=7)
    c = stratified_split(X, y, val_size=10, seed=8)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[2], c[2])
    assert np.array_equal(np.random.get_state()[1], state)  # global state untouched


def test_split_stratified_disjoint_complete():
    y = make_labels([50, 30, 20])
    X = np.arange(len(y)) * 10  # X encodes the sample index, so we can follow it
    X_train, y_train, X_val, y_val = stratified_split(X, y, val_size=10, seed=0)
    assert np.bincount(y_val).tolist() == [5, 3, 2]
    assert np.bincount(y_train).tolist() == [45, 27, 18]
    assert np.intersect1d(X_train, X_val).size == 0
    assert np.array_equal(np.sort(np.concatenate([X_train, X_val])), X)
    assert np.array_equal(y[X_train // 10], y_train) and np.array_equal(y[X_val // 10], y_val)


def test_split_rounds_to_exact_size():
    y = make_labels([7, 7, 7])
    _, _, _, y_val = stratified_split(np.zeros((21, 2)), y, val_size=10)
    assert len(y_val) == 10 and sorted(np.bincount(y_val)) == [3, 3, 4]


@pytest.mark.parametrize("val_size", [0, -1, 100, 101])
def test_split_bad_val_size(val_size):
    with pytest.raises(ValueError, match="val_size"):
        stratified_split(np.zeros(100), np.zeros(100), val_size=val_size)


def test_split_bad_inputs():
    with pytest.raises(TypeError):
        stratified_split(np.zeros(100), np.zeros(100), val_size=0.1)
    with pytest.raises(ValueError, match="X holds 100 samples but y holds 99"):
        stratified_split(np.zeros(100), np.zeros(99), val_size=10)


# ---- save / load


def test_save_load_round_trip(tmp_path):
    d = dict(X_train=np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32),
             y_train=np.arange(4, dtype=np.int64), mean=0.25, std=0.5)
    path = tmp_path / "sub" / "prepared.npz"
    assert save_prepared(d, path) == path
    save_prepared(d, path)  # overwriting is fine
    assert [p.name for p in path.parent.iterdir()] == ["prepared.npz"]  # no temp file left
    out = load_prepared(path)
    assert out.keys() == d.keys()
    assert np.array_equal(out["X_train"], d["X_train"]) and out["X_train"].dtype == np.float32
    assert out["mean"] == 0.25 and isinstance(out["std"], float)


def test_save_rejects_objects(tmp_path):
    with pytest.raises(ValueError, match=r"data\['names'\] is not numeric"):
        save_prepared({"names": [None, 1]}, tmp_path / "x.npz")
    assert not any(tmp_path.iterdir())


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run notebooks/01_data_preparation\.ipynb first "
                                                r"or call prepare_fashion_mnist\(\)"):
        load_prepared(tmp_path / "nothing.npz")
