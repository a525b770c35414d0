"""Fashion-MNIST: find or download the files, check them, prepare arrays for training.
CIFAR-10 (its official binary version) gets the same treatment at the end of the file.

Loading returns the raw uint8 images; the preprocessing helpers turn them into
float32 arrays (float32 halves memory and time against float64, and the network
trains in float32). `prepare_fashion_mnist` chains them the way the notebooks
use them, and `save_prepared` / `load_prepared` pass the result between notebooks.

    python -m utils.data    # make sure the data is here (download if needed) and check it
"""
import argparse
import gzip
import hashlib
import io
import math
import operator
import os
import struct
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from utils.paths import DATA_DIR

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# SHA-256 of the decompressed files: Debian re-compressed the .gz files, so only
# the contents are the same everywhere. Sizes: 47040016, 60008, 7840016, 10008 bytes.
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_DIR = DATA_DIR / "fashion"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # package dataset-fashion-mnist
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
PREPARED_PATH = DATA_DIR / "fashion_mnist_prepared.npz"

# IDX type byte -> big-endian NumPy dtype (the format allows these six).
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(source, expected_sha256=None, ndim=None, name=None):
    """Parse an IDX file (the MNIST file format) into an array, checking it on the way.

    Inputs:
    - source: path to an IDX file, or its bytes; gzipped or not (told apart by content).
    - expected_sha256: hex SHA-256 of the decompressed bytes, or None to skip the
      check (for files without a published checksum, like the tests' tiny ones).
    - ndim: number of dimensions the file must have (3 for images, 1 for labels), or None.
    - name: what error messages call the file; defaults to the path.

    Returns an array of the shape in the header, e.g. (N, 28, 28) uint8 for images,
    (N,) uint8 for labels, in native byte order and writable.
    Raises ValueError naming the file if it is corrupt, truncated or not what was expected.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, data = name or "<bytes>", bytes(source)
    else:
        name, data = name or str(source), Path(source).read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{name}: corrupt gzip data ({e})") from None

    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES:
        raise ValueError(f"{name}: not an IDX file: expected magic 0x0000TTDD "
                         f"(TT a type code, DD the ndim), found 0x{data[:4].hex()}")
    dtype, n_dims = np.dtype(IDX_DTYPES[data[2]]), data[3]
    if ndim is not None and n_dims != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions "
                         f"(magic 0x0000{data[2]:02x}{ndim:02x}), "
                         f"found {n_dims} (magic 0x{data[:4].hex()})")
    header_size = 4 + 4 * n_dims
    if len(data) < header_size:
        raise ValueError(f"{name}: truncated header: expected {header_size} bytes, "
                         f"found {len(data)}")
    shape = struct.unpack(f">{n_dims}I", data[4:header_size])
    expected_size = header_size + math.prod(shape) * dtype.itemsize
    if len(data) != expected_size:
        what = "truncated" if len(data) < expected_size else "trailing bytes"
        raise ValueError(f"{name}: {what}: shape {shape} needs {expected_size} bytes, "
                         f"found {len(data)}")

    # Checked after the header so a truncated file gets the clearer message above.
    if expected_sha256 is not None:
        found = hashlib.sha256(data).hexdigest()
        if found != expected_sha256.lower():
            raise ValueError(f"{name}: checksum mismatch: expected SHA-256 {expected_sha256}, "
                             f"found {found}")

    # frombuffer over bytes is read-only; the copy gives users an ordinary array.
    X = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return X.astype(dtype.newbyteorder("="))


def _fetch(url, dest, hint):
    """The bytes at url (to be checked, then written to dest), or an OSError that says what to do instead."""
    print(f"downloading {url} -> {dest}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError as e:
        raise OSError(f"could not download {url} ({e}); {hint}") from e


def _download(name, folder, verify):
    """Download <name>.gz into folder, atomically and only once it has been checked."""
    url, dest = f"{URL}{name}.gz", folder / f"{name}.gz"
    data = _fetch(url, dest, "install the Debian package dataset-fashion-mnist or copy the four .gz "
                             f"files into {folder}")
    read_idx(data, SHA256[name] if verify else None, name=url)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)  # readers see the whole file or none of it
    except BaseException:
        os.unlink(tmp)
        raise
    return dest


def fetch_fashion_mnist(data_dir=None, verify=True):
    """Find the four Fashion-MNIST .gz files, downloading the missing ones.

    Looks in data_dir if given (and only there); otherwise, file by file, in
    FASHION_DIR, then DEBIAN_DIR, then downloads from URL into FASHION_DIR.
    Returns a dict: file name without .gz -> Path of the .gz file.
    Raises FileNotFoundError naming data_dir if it lacks any of the files.
    """
    if data_dir is not None:
        data_dir = Path(data_dir)
        missing = [f"{n}.gz" for n in SHA256 if not (data_dir / f"{n}.gz").is_file()]
        if missing:
            raise FileNotFoundError(f"Fashion-MNIST files missing in {data_dir}: "
                                    f"{', '.join(missing)}")
        return {n: data_dir / f"{n}.gz" for n in SHA256}
    paths = {}
    for n in SHA256:
        found = [d / f"{n}.gz" for d in (FASHION_DIR, DEBIAN_DIR) if (d / f"{n}.gz").is_file()]
        paths[n] = found[0] if found else _download(n, FASHION_DIR, verify)
    return paths


def _read_pair(images_path, labels_path, verify):
    """Read and cross-check one images/labels pair; returns X (N, 28, 28) uint8, y (N,) int64."""
    def sha(path):
        return SHA256[path.name.removesuffix(".gz")] if verify else None
    X = read_idx(images_path, sha(images_path), ndim=3)
    y = read_idx(labels_path, sha(labels_path), ndim=1)
    if X.dtype != np.uint8 or X.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: expected uint8 images of 28x28, "
                         f"found {X.dtype} of {X.shape[1]}x{X.shape[2]}")
    if y.dtype != np.uint8 or y.size and y.max() >= len(CLASS_NAMES):
        raise ValueError(f"{labels_path}: expected uint8 labels in 0..{len(CLASS_NAMES) - 1}, "
                         f"found {y.dtype} up to {y.max() if y.size else None}")
    if len(X) != len(y):
        raise ValueError(f"{images_path} holds {len(X)} images but {labels_path} "
                         f"holds {len(y)} labels")
    return X, y.astype(np.int64)


def load_fashion_mnist(data_dir=None, verify=True):
    """Load Fashion-MNIST as raw arrays (sources as in fetch_fashion_mnist).

    Inputs:
    - data_dir: folder holding the four .gz files, or None to search (and download).
    - verify: check each file's SHA-256; False only for files other than the official ones.

    Returns ((X_train, y_train), (X_test, y_test)):
    - X_train: (60000, 28, 28) uint8; y_train: (60000,) int64 in 0..9
    - X_test: (10000, 28, 28) uint8; y_test: (10000,) int64 in 0..9
    """
    p = fetch_fashion_mnist(data_dir, verify)
    return (_read_pair(p["train-images-idx3-ubyte"], p["train-labels-idx1-ubyte"], verify),
            _read_pair(p["t10k-images-idx3-ubyte"], p["t10k-labels-idx1-ubyte"], verify))


def _as_float32(X):
    return np.array(X, dtype=np.float32, order="C")  # always a copy, never a view


def scale(X):
    """Map pixel values 0..255 to [0, 1].

    X: uint8 array of any shape. Returns a float32 array of the same shape.
    """
    if X.dtype != np.uint8:
        # Scaling twice would silently divide by 255 again.
        raise TypeError(f"scale expects uint8 pixels, got {X.dtype}")
    X = _as_float32(X)
    X /= 255  # in place: `X / 255.0` on uint8 would give float64
    return X


def standardize(X_train, *others):
    """Shift and scale every array by the mean and std of X_train.

    One scalar mean and std over all pixels, not one per pixel: border pixels are
    almost always 0, and dividing by their ~0 std would blow up noise.
    Inputs: X_train of shape (N, ...); others: arrays (e.g. X_val, X_test) of any shape.
    Returns (X_train_std, *others_std, mean, std): float32 arrays, then two floats.
    """
    # float32 is enough here: NumPy sums pairwise, so the result matches float64 to ~1e-7.
    mean, std = float(X_train.mean()), float(X_train.std())
    if std == 0:
        raise ValueError("standardize: X_train is constant (std 0)")
    out = []
    for X in (X_train, *others):
        X = _as_float32(X)
        X -= mean
        X /= std
        out.append(X)
    return (*out, mean, std)


def flatten(X):
    """Flatten each sample into a vector.

    X: array of shape (N, d_1, ..., d_k). Returns float32 of shape (N, d_1 * ... * d_k).
    """
    return _as_float32(X.reshape(len(X), -1))


def random_mirror(X, rng, image_shape=None):
    """Mirror (left to right) a random half of a batch of images: data augmentation.

    A coat mirrored is still a coat, so the flipped copy is a new training image with the
    same label. X: images (N, ..., W), or flat rows (N, H * W) with image_shape=(H, W).
    rng: a np.random.Generator. Returns a new array of X's shape and dtype; X is unchanged.
    As train(augment=...), for flat Fashion-MNIST rows:
    ``augment=lambda X, rng: random_mirror(X, rng, (28, 28))``.
    """
    images = X if image_shape is None else X.reshape(len(X), *image_shape)
    flip = rng.random(len(X)) < 0.5
    out = images.copy()
    out[flip] = images[flip, ..., ::-1]
    return out.reshape(X.shape)


def stratified_split(X, y, val_size=6000, seed=0):
    """Split off a validation set in which each class keeps its share.

    Per-class counts are val_size * class share, rounded so they add up to
    val_size (largest remainders first). Samples keep their original order.
    Inputs:
    - X: array of shape (N, ...); y: labels of shape (N,)
    - val_size: number of validation samples, 0 < val_size < N
    - seed: seed for np.random.default_rng; same seed, same split.
    Returns X_train, y_train, X_val, y_val: new arrays, dtypes as given,
    of N - val_size and val_size samples.
    """
    val_size = operator.index(val_size)  # TypeError for 0.1 and the like
    if len(X) != len(y):
        raise ValueError(f"X holds {len(X)} samples but y holds {len(y)}")
    if not 0 < val_size < len(X):
        raise ValueError(f"val_size must be between 1 and {len(X) - 1}, got {val_size}")
    rng = np.random.default_rng(seed)
    _, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = val_size * counts / len(y)
    n_val = np.floor(quota).astype(np.int64)
    n_val[np.argsort(n_val - quota, kind="stable")[:val_size - n_val.sum()]] += 1
    is_val = np.zeros(len(y), dtype=bool)
    for k, n in enumerate(n_val):
        is_val[rng.permutation(np.flatnonzero(y_idx == k))[:n]] = True
    return X[~is_val], y[~is_val], X[is_val], y[is_val]


def prepare_fashion_mnist(val_size=6000, seed=0, flat=True, data_dir=None):
    """Load Fashion-MNIST and make it ready for training.

    Splits val_size stratified samples off the 60000 training images, scales to
    [0, 1], then standardizes all three sets with the mean and std of what is
    left for training (the validation and test sets must not leak into them).
    Returns a dict with
    - X_train, X_val, X_test: float32 of shape (N, 784) if flat, else (N, 1, 28, 28)
    - y_train, y_val, y_test: int64 of shape (N,)
    - mean, std: floats, the training statistics on the [0, 1] scale.
    """
    (X, y), (X_test, y_test) = load_fashion_mnist(data_dir)
    X_train, y_train, X_val, y_val = stratified_split(X, y, val_size, seed)
    X_train, X_val, X_test, mean, std = standardize(scale(X_train), scale(X_val), scale(X_test))
    shape = (-1, 784) if flat else (-1, 1, 28, 28)  # (N, C, H, W) for conv nets
    return dict(X_train=X_train.reshape(shape), y_train=y_train,
                X_val=X_val.reshape(shape), y_val=y_val,
                X_test=X_test.reshape(shape), y_test=y_test, mean=mean, std=std)


def save_prepared(data, path=PREPARED_PATH):
    """Write a dict of arrays and numbers to an .npz file, atomically.

    data: dict name -> array or number (no objects: load_prepared refuses pickles).
    Returns the path written.
    """
    path = Path(path)
    for k, v in data.items():
        if np.asarray(v).dtype == object:
            raise ValueError(f"save_prepared: data[{k!r}] is not numeric, load_prepared "
                             f"could not read it back")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **data)  # a file object, so savez does not append ".npz" to tmp
        os.replace(tmp, path)  # a reader never sees a half-written file
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load_prepared(path=PREPARED_PATH):
    """Read a dict written by save_prepared.

    Returns dict name -> array; numbers saved as scalars come back as Python
    numbers (e.g. "mean", "std").
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run notebooks/01_data_preparation.ipynb "
                                f"first or call prepare_fashion_mnist()")
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}  # each f[k] reads from disk again, so read once
    return {k: v.item() if v.ndim == 0 else v for k, v in data.items()}


# ---- CIFAR-10, the official binary version (no pickle)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_DIR = DATA_DIR / "cifar10"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # of the tarball, as published on the site
CIFAR10_TAR = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"  # what the tarball unpacks to
CIFAR10_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
CIFAR10_RECORD = 1 + 3 * 32 * 32  # one label byte, then the red, green and blue 32x32 planes
CIFAR10_PER_FILE = 10000


def read_cifar10_batch(data, name, verify=True):
    """Parse one CIFAR-10 binary batch: records of 1 label byte and 3072 pixel bytes (CHW order).

    data: the file's bytes; name: what error messages call it.
    verify: also require the official size of 10,000 records.
    Returns X (N, 3, 32, 32) uint8 and y (N,) int64.
    Raises ValueError naming the file if it is empty, truncated or holds labels outside 0..9.
    """
    n, rest = divmod(len(data), CIFAR10_RECORD)
    if n == 0 or rest:
        raise ValueError(f"{name}: truncated or not a CIFAR-10 batch: {len(data)} bytes is not a "
                         f"positive whole number of {CIFAR10_RECORD}-byte records (1 label + 3072 pixels)")
    if verify and n != CIFAR10_PER_FILE:
        raise ValueError(f"{name}: expected {CIFAR10_PER_FILE} records "
                         f"({CIFAR10_PER_FILE * CIFAR10_RECORD} bytes), found {n}")
    records = np.frombuffer(data, dtype=np.uint8).reshape(n, CIFAR10_RECORD)
    y = records[:, 0].astype(np.int64)
    if y.max() >= len(CIFAR10_CLASSES):
        bad = int(np.argmax(y >= len(CIFAR10_CLASSES)))
        raise ValueError(f"{name}: corrupt: record {bad} has label byte {y[bad]}, expected 0..9")
    return records[:, 1:].reshape(n, 3, 32, 32).copy(), y


def _download_cifar10(folder, verify):
    """Download the official tarball into folder, atomically and only once its MD5 matches."""
    dest = folder / CIFAR10_TAR
    data = _fetch(CIFAR10_URL, dest, f"copy {CIFAR10_TAR} (or its unpacked {CIFAR10_FOLDER} folder) into {folder}")
    _check_md5(data, CIFAR10_URL, verify)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{CIFAR10_TAR}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise
    return dest


def _check_md5(data, name, verify):
    found = hashlib.md5(data).hexdigest()
    if verify and found != CIFAR10_MD5:
        raise ValueError(f"{name}: checksum mismatch: expected MD5 {CIFAR10_MD5}, found {found}")


def _cifar10_files(folder, verify):
    """The six batches' bytes and the class-name file's text (or None), from folder or its tarball."""
    for d in (folder / CIFAR10_FOLDER, folder):
        if all((d / f).is_file() for f in CIFAR10_FILES):
            meta = d / "batches.meta.txt"
            return ({f: (d / f).read_bytes() for f in CIFAR10_FILES},
                    meta.read_text() if meta.is_file() else None, d)
    tar_path = folder / CIFAR10_TAR
    if not tar_path.is_file():
        return None
    data = tar_path.read_bytes()
    try:
        # Read in memory, never extracted: member names cannot write outside the folder.
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [f for f in CIFAR10_FILES if f not in members]
            if missing:
                raise ValueError(f"{tar_path}: not the CIFAR-10 binary tarball: "
                                 f"missing {', '.join(missing)}")
            files = {f: tar.extractfile(members[f]).read() for f in CIFAR10_FILES}
            meta = members.get("batches.meta.txt")
            meta = tar.extractfile(meta).read().decode() if meta else None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{tar_path}: corrupt or truncated tar.gz ({e})") from None
    _check_md5(data, tar_path, verify)  # after unpacking, so a truncated file gets the message above
    return files, meta, tar_path


def load_cifar10(data_dir=None, verify=True):
    """Load CIFAR-10 from the official binary version as raw arrays.

    Looks in data_dir (default CIFAR10_DIR) for the unpacked cifar-10-batches-bin folder,
    the six .bin files themselves, or cifar-10-binary.tar.gz; with no data_dir given and
    nothing found, downloads the tarball from CIFAR10_URL into CIFAR10_DIR.
    verify: check the tarball's MD5 and the official sizes; False only for other files
    (the tests' tiny ones).
    Returns ((X_train, y_train), (X_test, y_test)):
    - X_train: (50000, 3, 32, 32) uint8, channels red, green, blue; y_train: (50000,) int64 in 0..9
    - X_test: (10000, 3, 32, 32) uint8; y_test: (10000,) int64 in 0..9
    Raises FileNotFoundError if data_dir holds none of these, ValueError for corrupt files.
    """
    folder = CIFAR10_DIR if data_dir is None else Path(data_dir)
    found = _cifar10_files(folder, verify)
    if found is None:
        if data_dir is not None:
            raise FileNotFoundError(f"CIFAR-10 not found in {folder}: expected {CIFAR10_TAR}, "
                                    f"a {CIFAR10_FOLDER} folder or the files {', '.join(CIFAR10_FILES)}")
        _download_cifar10(folder, verify)
        found = _cifar10_files(folder, verify)
    files, meta, source = found
    if meta is not None and tuple(meta.split()) != CIFAR10_CLASSES:
        raise ValueError(f"{source}: batches.meta.txt lists the classes {meta.split()}, "
                         f"expected {list(CIFAR10_CLASSES)}")
    batches = [read_cifar10_batch(files[f], f"{source}: {f}", verify) for f in CIFAR10_FILES]
    X_train = np.concatenate([X for X, _ in batches[:-1]])
    y_train = np.concatenate([y for _, y in batches[:-1]])
    return (X_train, y_train), batches[-1]


def prepare_cifar10(val_size=5000, seed=0, flat=True, data_dir=None, verify=True):
    """Load CIFAR-10 and make it ready for training, as prepare_fashion_mnist does Fashion-MNIST.

    A stratified validation split of val_size off the 50000 training images, scaling to
    [0, 1], then one mean and std from the remaining training images for all three sets.
    Returns a dict with
    - X_train, X_val, X_test: float32 of shape (N, 3072) if flat, else (N, 3, 32, 32)
    - y_train, y_val, y_test: int64 of shape (N,)
    - mean, std: floats, the training statistics on the [0, 1] scale.
    """
    (X, y), (X_test, y_test) = load_cifar10(data_dir, verify)
    X_train, y_train, X_val, y_val = stratified_split(X, y, val_size, seed)
    X_train, X_val, X_test, mean, std = standardize(scale(X_train), scale(X_val), scale(X_test))
    shape = (-1, 3 * 32 * 32) if flat else (-1, 3, 32, 32)
    return dict(X_train=X_train.reshape(shape), y_train=y_train,
                X_val=X_val.reshape(shape), y_val=y_val,
                X_test=X_test.reshape(shape), y_test=y_test, mean=mean, std=std)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Find or download Fashion-MNIST, verify it and print its shapes.")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with the four .gz files (default: search, then download)")
    args = parser.parse_args(argv)
    try:
        for name, path in fetch_fashion_mnist(args.data_dir).items():
            print(f"{name:24s} {path}")
        (X_train, y_train), (X_test, y_test) = load_fashion_mnist(args.data_dir)
    except (OSError, ValueError) as e:
        parser.exit(1, f"error: {e}\n")  # the message says it all; a traceback would bury it
    print(f"checksums OK; train {X_train.shape} {X_train.dtype}, labels {y_train.shape}; "
          f"test {X_test.shape} {X_test.dtype}, labels {y_test.shape}")


if __name__ == "__main__":
    main()
