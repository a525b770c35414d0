"""CIFAR-10 loading on tiny data sets written here in the official binary record format.

No offline copy of CIFAR-10 exists on these machines, so every test writes its own files:
records of one label byte and 3,072 pixel bytes (the red, green and blue 32x32 planes),
as loose .bin files, as the cifar-10-batches-bin folder and as the tar.gz.
"""
import hashlib
import io
import tarfile

import numpy as np
import pytest

from utils.core import datasets as data
from utils.core import prepared
from utils.core.datasets import CIFAR10_CLASSES, load_cifar10, read_cifar10_batch
from utils.core.models import lenet5, mlp
from utils.core.prepared import prepare_cifar10
from utils.core.train import train

FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
META = "\n".join(CIFAR10_CLASSES) + "\n\n"  # the official file ends with blank lines


def tiny_cifar(n_per_file=40, seed=0):
    """{file name: (X, y)}: images whose mean colour depends on the class, so they can be learnt."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 216, (10, 3))
    batches = {}
    for name in FILES:
        y = rng.permutation(np.arange(n_per_file) % 10)
        noise = rng.integers(-40, 41, (n_per_file, 3, 32, 32))
        X = np.clip(colours[y][:, :, None, None] + noise, 0, 255).astype(np.uint8)
        batches[name] = (X, y)
    return batches


def record_bytes(X, y):
    """The binary batch format, record by record: label byte, then the CHW pixels."""
    return b"".join(bytes([label]) + image.tobytes() for image, label in zip(X, y))


def write_folder(folder, batches, meta=META):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (X, y) in batches.items():
        (folder / name).write_bytes(record_bytes(X, y))
    if meta is not None:
        (folder / "batches.meta.txt").write_text(meta)
    return folder


def tarball_bytes(batches):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in [*((n, record_bytes(*b)) for n, b in batches.items()), ("batches.meta.txt", META.encode())]:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def assert_loaded(loaded, batches):
    (X_train, y_train), (X_test, y_test) = loaded
    np.testing.assert_array_equal(X_train, np.concatenate([batches[f][0] for f in FILES[:5]]))
    np.testing.assert_array_equal(y_train, np.concatenate([batches[f][1] for f in FILES[:5]]))
    np.testing.assert_array_equal(X_test, batches["test_batch.bin"][0])
    np.testing.assert_array_equal(y_test, batches["test_batch.bin"][1])
    assert X_train.dtype == np.uint8 and X_train.shape == (200, 3, 32, 32) and X_train.flags.writeable
    assert y_train.dtype == y_test.dtype == np.int64


@pytest.mark.parametrize("layout", ["loose files", "unpacked folder", "tarball"])
def test_loads_every_layout(tmp_path, layout):
    batches = tiny_cifar()
    if layout == "loose files":
        write_folder(tmp_path, batches)
    elif layout == "unpacked folder":
        write_folder(tmp_path / "cifar-10-batches-bin", batches)
    else:
        (tmp_path / "cifar-10-binary.tar.gz").write_bytes(tarball_bytes(batches))
    assert_loaded(load_cifar10(tmp_path, verify=False), batches)


def test_channels_are_planes_in_rgb_order(tmp_path):
    X = np.zeros((1, 3, 32, 32), np.uint8)
    X[0, 0], X[0, 1, 5, 7], X[0, 2, 31, 31] = 200, 100, 50  # red plane, one green pixel, one blue pixel
    raw = bytes([3]) + bytes([200] * 1024) + bytes(5 * 32 + 7) + bytes([100]) + bytes(1023 - 5 * 32 - 7) \
        + bytes(1023) + bytes([50])
    got, y = read_cifar10_batch(raw, "one record", verify=False)
    np.testing.assert_array_equal(got, X)
    assert y.tolist() == [3]


def test_verify_wants_the_official_sizes_and_checksum(tmp_path):
    batches = tiny_cifar()
    write_folder(tmp_path / "folder", batches)
    with pytest.raises(ValueError, match="data_batch_1.bin: expected 10000 records"):
        load_cifar10(tmp_path / "folder")
    (tmp_path / "tar").mkdir()
    (tmp_path / "tar" / "cifar-10-binary.tar.gz").write_bytes(tarball_bytes(batches))
    with pytest.raises(ValueError, match=f"checksum mismatch: expected MD5 {data.CIFAR10_MD5}"):
        load_cifar10(tmp_path / "tar")


def test_truncated_and_corrupt_batches(tmp_path):
    batches = tiny_cifar()
    folder = write_folder(tmp_path, batches)
    whole = (folder / "data_batch_3.bin").read_bytes()
    (folder / "data_batch_3.bin").write_bytes(whole[:-100])
    with pytest.raises(ValueError, match=r"data_batch_3.bin: truncated .* 3073-byte records"):
        load_cifar10(folder, verify=False)
    (folder / "data_batch_3.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="data_batch_3.bin: truncated"):
        load_cifar10(folder, verify=False)
    bad = bytearray(whole)
    bad[5 * 3073] = 12  # the label byte of record 5
    (folder / "data_batch_3.bin").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="data_batch_3.bin: corrupt: record 5 has label byte 12, expected 0..9"):
        load_cifar10(folder, verify=False)


def test_corrupt_tarball_and_wrong_contents(tmp_path):
    batches = tiny_cifar()
    tar = tmp_path / "cifar-10-binary.tar.gz"
    whole = tarball_bytes(batches)
    tar.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated tar.gz"):
        load_cifar10(tmp_path, verify=False)
    tar.write_bytes(b"not a tarball at all")
    with pytest.raises(ValueError, match="corrupt or truncated tar.gz"):
        load_cifar10(tmp_path, verify=False)
    tar.write_bytes(tarball_bytes({k: v for k, v in batches.items() if k != "test_batch.bin"}))
    with pytest.raises(ValueError, match="missing test_batch.bin"):
        load_cifar10(tmp_path, verify=False)


def test_missing_files_and_wrong_class_list(tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found in"):
        load_cifar10(tmp_path, verify=False)
    batches = tiny_cifar()
    write_folder(tmp_path, {k: v for k, v in batches.items() if k != "data_batch_4.bin"})
    with pytest.raises(FileNotFoundError, match="data_batch_4.bin"):
        load_cifar10(tmp_path, verify=False)
    write_folder(tmp_path, batches, meta="\n".join(reversed(CIFAR10_CLASSES)))
    with pytest.raises(ValueError, match="batches.meta.txt lists the classes"):
        load_cifar10(tmp_path, verify=False)


def test_download_is_checked_and_atomic(tmp_path, monkeypatch):
    batches = tiny_cifar()
    payload = tarball_bytes(batches)

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    urls = []
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: urls.append(url) or Response(payload))
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path))  # data.cifar10_dir() is tmp_path / "cifar10"
    with pytest.raises(ValueError, match="checksum mismatch"):
        data._download_cifar10(tmp_path / "cifar10", verify=True)
    assert not list((tmp_path / "cifar10").glob("*"))  # nothing half-checked is left behind
    monkeypatch.setattr(data, "CIFAR10_MD5", hashlib.md5(payload).hexdigest())
    assert data._download_cifar10(tmp_path / "cifar10", verify=True).read_bytes() == payload
    (tmp_path / "cifar10" / "cifar-10-binary.tar.gz").unlink()
    assert_loaded(load_cifar10(verify=False), batches)  # nothing there: downloads, then loads
    assert urls == [data.CIFAR10_URL] * 3


def test_prepare_cifar10(tmp_path):
    write_folder(tmp_path, tiny_cifar())
    d = prepare_cifar10(val_size=50, data_dir=tmp_path, verify=False, include_test=True)
    assert d["X_train"].shape == (150, 3072) and d["X_val"].shape == (50, 3072) and d["X_test"].shape == (40, 3072)
    assert all(d[k].dtype == np.float32 for k in ("X_train", "X_val", "X_test"))
    assert abs(d["X_train"].mean()) < 1e-5 and abs(d["X_train"].std() - 1) < 1e-4
    assert np.bincount(d["y_val"]).tolist() == [5] * 10  # stratified
    images = prepare_cifar10(val_size=50, flat=False, data_dir=tmp_path, verify=False)
    assert images["X_train"].shape == (150, 3, 32, 32)
    np.testing.assert_array_equal(images["X_train"].reshape(150, -1), d["X_train"])
    assert 0 < d["mean"] < 1 and d["std"] > 0


def test_short_training_runs(tmp_path):
    write_folder(tmp_path, tiny_cifar(n_per_file=80))
    images = prepare_cifar10(val_size=100, flat=False, data_dir=tmp_path, verify=False)
    splits = [images[k] for k in ("X_train", "y_train", "X_val", "y_val")]
    history = train(lenet5(in_channels=3, image_size=32, rng=0), *splits, num_epochs=6, optimizer="adam",
                    lr=2e-3, batch_size=32, progress=False)
    assert history.val_acc.max() > 0.5  # chance is 0.1
    # The course project's other net: the three-layer MLP with LeakyReLU on flat CIFAR-10.
    flat = [images["X_train"].reshape(-1, 3072), images["y_train"], images["X_val"].reshape(-1, 3072), images["y_val"]]
    history = train(mlp([3072, 64, 10], "leaky_relu", rng=0), *flat, num_epochs=6, optimizer="adam", lr=1e-3,
                    batch_size=32, progress=False)
    assert history.val_acc.max() > 0.5


def test_prepare_names_cifar10_and_its_classes(tmp_path):
    write_folder(tmp_path, tiny_cifar())
    d = prepared.prepare("cifar10", val_size=50, flat=False, data_dir=tmp_path, verify=False)
    assert d["dataset"] == "cifar10" and d["image_shape"] == (3, 32, 32) and d["num_classes"] == 10
    assert d["class_names"] == CIFAR10_CLASSES and d["X_train"].shape == (150, 3, 32, 32)
    with pytest.raises(ValueError, match="val_size must be between 1 and 199, got 5000"):  # CIFAR-10's default
        prepared.prepare("cifar10", data_dir=tmp_path, verify=False)
