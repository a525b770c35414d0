"""Fashion-MNIST and CIFAR-10: find or download the files, check them, prepare arrays for training.

Loading returns the raw uint8 images; utils.core.preprocess turns them into float32 arrays, and
utils.core.prepared chains the steps the way the notebooks use them. Every file is read through
utils.plumbing.files, with caps derived from the official sizes, so a corrupt or hostile file gets
a DataFileError naming it, never a hang or a memory blow-up.

    python -m utils data    # make sure the data is here (download if needed) and check it
"""
import hashlib
import io
import math
import struct
import sys
import urllib.request
from pathlib import Path

import numpy as np

from utils.plumbing import cli, paths
from utils.plumbing.errors import DataFileError
from utils.plumbing.files import Gunzip, atomic_write, read_regular, read_tar_gz
from utils.plumbing.language import _

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
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # package dataset-fashion-mnist
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MAX_IDX_BYTES = 64 * 2**20  # an IDX file, compressed or not: the largest official one is 47,040,016 bytes

# IDX type byte -> big-endian NumPy dtype (the format allows these six).
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

def fashion_dir():
    """Where Fashion-MNIST is downloaded to: data_dir()/fashion (NN_DATA_DIR moves data_dir)."""
    return paths.data_dir() / "fashion"


def cifar10_dir():
    """Where CIFAR-10 is looked for and downloaded to: data_dir()/cifar10."""
    return paths.data_dir() / "cifar10"


def read_idx(source, expected_sha256=None, ndim=None, name=None, max_bytes=MAX_IDX_BYTES):
    """Parse an IDX file (the MNIST file format) into an array, checking it on the way.

    Inputs:
    - source: path to an IDX file, or its bytes; gzipped or not (told apart by content).
    - expected_sha256: hex SHA-256 of the decompressed bytes, or None to skip the
      check (for files without a published checksum, like the tests' tiny ones).
    - ndim: number of dimensions the file must have (3 for images, 1 for labels), or None.
    - name: what error messages call the file; defaults to the path.
    - max_bytes: the most bytes the file may hold, compressed or not; a gzip stream is
      decompressed only as far as the shape in its header says, so a gzip bomb costs nothing.

    Returns an array of the shape in the header, e.g. (N, 28, 28) uint8 for images,
    (N,) uint8 for labels, in native byte order and writable.
    Raises DataFileError (a ValueError) naming the file if it is corrupt, truncated, too
    large or not what was expected.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, data = name or "<bytes>", bytes(source)
    else:
        name, data = name or str(source), read_regular(source, max_bytes, _("an IDX file"))
    gzipped = data[:2] == b"\x1f\x8b"
    read = Gunzip(data, name, max_bytes).read if gzipped else io.BytesIO(data).read

    head = read(4)
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in IDX_DTYPES:
        raise DataFileError(_("{name}: not an IDX file: expected magic 0x0000TTDD (TT a type code, DD the ndim), "
                              "found 0x{found}").format(name=name, found=head.hex()))
    dtype, n_dims = np.dtype(IDX_DTYPES[head[2]]), head[3]
    if ndim is not None and n_dims != ndim:
        raise DataFileError(_("{name}: expected {ndim} dimensions (magic 0x{magic}), found {n_dims} (magic "
                              "0x{found})").format(name=name, ndim=ndim, magic=f"0000{head[2]:02x}{ndim:02x}",
                                                   n_dims=n_dims, found=head.hex()))
    header_size = 4 + 4 * n_dims
    head += read(header_size - 4)
    if len(head) < header_size:
        raise DataFileError(_("{name}: truncated header: expected {size} bytes, found {found}").format(
            name=name, size=header_size, found=len(head)))
    shape = struct.unpack(f">{n_dims}I", head[4:header_size])
    # A zero dimension makes the product small, but NumPy still refuses the huge ones beside it.
    if 0 in shape and math.prod(d or 1 for d in shape) * dtype.itemsize > max_bytes:
        raise DataFileError(_("{name}: shape {shape} in the header: its non-zero dimensions alone need {size} "
                              "bytes, more than the {limit} bytes an IDX file may have here (max_bytes); expected a "
                              "real image shape").format(name=name, shape=shape,
                                                         size=f"{math.prod(d or 1 for d in shape) * dtype.itemsize:,}",
                                                         limit=f"{max_bytes:,}"))
    expected_size = header_size + math.prod(shape) * dtype.itemsize
    if expected_size > max_bytes:
        raise DataFileError(_("{name}: shape {shape} needs {size} bytes, more than the {limit} bytes an IDX file "
                              "may have here (max_bytes)").format(name=name, shape=shape, size=f"{expected_size:,}",
                                                                  limit=f"{max_bytes:,}"))
    body = read(expected_size - header_size)
    extra = read(1)  # for a gzip stream, reading to its end also checks its CRC
    if len(body) < expected_size - header_size or extra:
        what = _("trailing bytes") if extra else _("truncated")
        found = (len(data) if not gzipped else _("more than {size}").format(size=expected_size) if extra
                 else header_size + len(body))
        raise DataFileError(_("{name}: {what}: shape {shape} needs {size} bytes, found {found}").format(
            name=name, what=what, shape=shape, size=expected_size, found=found))

    # Checked after the header so a truncated file gets the clearer message above.
    if expected_sha256 is not None:
        digest = hashlib.sha256(head)
        digest.update(body)
        found = digest.hexdigest()
        if found != expected_sha256.lower():
            raise DataFileError(_("{name}: checksum mismatch: expected SHA-256 {expected}, found {found}").format(
                name=name, expected=expected_sha256, found=found))

    # frombuffer over bytes is read-only; the copy gives users an ordinary array.
    X = np.frombuffer(body, dtype=dtype).reshape(shape)
    return X.astype(dtype.newbyteorder("="))


def _fetch(url, dest, hint):
    """The bytes at url (to be checked, then written to dest), or an OSError that says what to do instead."""
    print(_("downloading {url} -> {dest}").format(url=url, dest=dest), file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError as e:
        raise OSError(_("could not download {url} ({error}); {hint}").format(url=url, error=e, hint=hint)) from e


def _write(data, dest):
    with atomic_write(dest) as f:  # readers see the whole file or none of it
        f.write(data)
    return dest


def _download(name, folder, verify):
    """Download <name>.gz into folder, atomically and only once it has been checked."""
    url, dest = f"{URL}{name}.gz", folder / f"{name}.gz"
    data = _fetch(url, dest, _("install the Debian package dataset-fashion-mnist or copy the four .gz files into "
                               "{folder}").format(folder=folder))
    read_idx(data, SHA256[name] if verify else None, name=url)
    return _write(data, dest)


def fetch_fashion_mnist(data_dir=None, verify=True):
    """Find the four Fashion-MNIST .gz files, downloading the missing ones.

    Looks in data_dir if given (and only there); otherwise, file by file, in fashion_dir(), then
    DEBIAN_DIR, then downloads from URL into fashion_dir(). Returns a dict: file name without .gz ->
    Path of the .gz file. Raises FileNotFoundError naming data_dir if it lacks any of the files.
    """
    # exists(), not is_file(): a FIFO or a folder in a file's place gets read_idx's clear error.
    if data_dir is not None:
        data_dir = Path(data_dir)
        missing = [f"{n}.gz" for n in SHA256 if not (data_dir / f"{n}.gz").exists()]
        if missing:
            raise FileNotFoundError(_("Fashion-MNIST files missing in {folder}: {files}").format(
                folder=data_dir, files=", ".join(missing)))
        return {n: data_dir / f"{n}.gz" for n in SHA256}
    paths_found, folder = {}, fashion_dir()
    for n in SHA256:
        found = [d / f"{n}.gz" for d in (folder, DEBIAN_DIR) if (d / f"{n}.gz").exists()]
        paths_found[n] = found[0] if found else _download(n, folder, verify)
    return paths_found


def _read_pair(images_path, labels_path, verify):
    """Read and cross-check one images/labels pair; returns X (N, 28, 28) uint8, y (N,) int64."""
    def sha(path):
        return SHA256[path.name.removesuffix(".gz")] if verify else None
    X = read_idx(images_path, sha(images_path), ndim=3)
    y = read_idx(labels_path, sha(labels_path), ndim=1)
    if X.dtype != np.uint8 or X.shape[1:] != (28, 28):
        raise DataFileError(_("{path}: expected uint8 images of 28x28, found {dtype} of {size}").format(
            path=images_path, dtype=X.dtype, size=f"{X.shape[1]}x{X.shape[2]}"))
    if y.dtype != np.uint8 or y.size and y.max() >= len(CLASS_NAMES):
        raise DataFileError(_("{path}: expected uint8 labels in 0..{high}, found {dtype} up to {found}").format(
            path=labels_path, high=len(CLASS_NAMES) - 1, dtype=y.dtype, found=y.max() if y.size else None))
    if len(X) != len(y):
        raise DataFileError(_("{images} holds {n} images but {labels} holds {m} labels").format(
            images=images_path, n=len(X), labels=labels_path, m=len(y)))
    return X, y.astype(np.int64)


FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _fashion_mnist_split(split, data_dir=None, verify=True):
    """One Fashion-MNIST split, "train" or "test", as raw arrays X (N, 28, 28) uint8, y (N,) int64."""
    p = fetch_fashion_mnist(data_dir, verify)
    images, labels = FASHION_FILES[split]
    return _read_pair(p[images], p[labels], verify)


def load_fashion_mnist(data_dir=None, verify=True):
    """Load Fashion-MNIST as raw arrays (sources as in fetch_fashion_mnist), both splits.

    Inputs:
    - data_dir: folder holding the four .gz files, or None to search (and download).
    - verify: check each file's SHA-256; False only for files other than the official ones.

    Returns ((X_train, y_train), (X_test, y_test)):
    - X_train: (60000, 28, 28) uint8; y_train: (60000,) int64 in 0..9
    - X_test: (10000, 28, 28) uint8; y_test: (10000,) int64 in 0..9
    Training code wants load_split("fashion_mnist", "train"), which never reads the test files.
    """
    return load_split("fashion_mnist", "train", data_dir, verify), load_split("fashion_mnist", "test", data_dir, verify)


# ---- CIFAR-10, the official binary version (no pickle)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # of the tarball, as published on the site
CIFAR10_TAR = "cifar-10-binary.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-bin"  # what the tarball unpacks to
CIFAR10_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
CIFAR10_META = "batches.meta.txt"
CIFAR10_RECORD = 1 + 3 * 32 * 32  # one label byte, then the red, green and blue 32x32 planes
CIFAR10_PER_FILE = 10000
# Caps from the official sizes: a batch is 30,730,000 bytes, the tarball 170,052,171 and
# it unpacks to six batches, a 61-byte class list and a small readme.
CIFAR10_BATCH_BYTES = CIFAR10_PER_FILE * CIFAR10_RECORD
CIFAR10_META_BYTES = 2**16
CIFAR10_TAR_BYTES = 200 * 2**20
CIFAR10_UNPACKED_BYTES = len(CIFAR10_FILES) * CIFAR10_BATCH_BYTES + 2**20


def read_cifar10_batch(data, name, verify=True):
    """Parse one CIFAR-10 binary batch: records of 1 label byte and 3072 pixel bytes (CHW order).

    data: the file's bytes; name: what error messages call it.
    verify: also require the official size of 10,000 records.
    Returns X (N, 3, 32, 32) uint8 and y (N,) int64.
    Raises DataFileError naming the file if it is empty, truncated, too large or holds labels outside 0..9.
    """
    n, rest = divmod(len(data), CIFAR10_RECORD)
    if n == 0 or rest:
        raise DataFileError(_("{name}: truncated or not a CIFAR-10 batch: {size} bytes is not a positive whole "
                              "number of {record}-byte records (1 label + 3072 pixels)").format(
            name=name, size=len(data), record=CIFAR10_RECORD))
    if (verify and n != CIFAR10_PER_FILE) or n > CIFAR10_PER_FILE:
        raise DataFileError(_("{name}: expected {n} records ({size} bytes), found {found}").format(
            name=name, n=CIFAR10_PER_FILE, size=CIFAR10_PER_FILE * CIFAR10_RECORD, found=n))
    records = np.frombuffer(data, dtype=np.uint8).reshape(n, CIFAR10_RECORD)
    y = records[:, 0].astype(np.int64)
    if y.max() >= len(CIFAR10_CLASSES):
        bad = int(np.argmax(y >= len(CIFAR10_CLASSES)))
        raise DataFileError(_("{name}: corrupt: record {i} has label byte {label}, expected 0..9").format(
            name=name, i=bad, label=y[bad]))
    return records[:, 1:].reshape(n, 3, 32, 32).copy(), y


def _download_cifar10(folder, verify):
    """Download the official tarball into folder, atomically and only once its MD5 matches."""
    dest = folder / CIFAR10_TAR
    data = _fetch(CIFAR10_URL, dest, _("copy {tar} (or its unpacked {unpacked} folder) into {folder}").format(
        tar=CIFAR10_TAR, unpacked=CIFAR10_FOLDER, folder=folder))
    _check_md5(data, CIFAR10_URL, verify)
    return _write(data, dest)


def _check_md5(data, name, verify):
    found = hashlib.md5(data).hexdigest()
    if verify and found != CIFAR10_MD5:
        raise DataFileError(_("{name}: checksum mismatch: expected MD5 {expected}, found {found}").format(
            name=name, expected=CIFAR10_MD5, found=found))


def _class_list(raw, name):
    """The class names in batches.meta.txt (bytes), one per line."""
    try:
        return raw.decode("utf-8").split()
    except UnicodeDecodeError as e:
        raise DataFileError(_("{name}: not UTF-8 text ({error}); expected the ten class names, one per "
                              "line").format(name=name, error=e)) from None


def _cifar10_files(folder, verify, names=tuple(CIFAR10_FILES)):
    """The batches' bytes (those in names) and the class list (or None), from folder or its tarball; None if absent.

    From an unpacked folder only the named batches are read; from the tarball all six pass
    through the decompressor (the MD5 covers the whole file) but only the named ones are kept.
    """
    for d in (folder / CIFAR10_FOLDER, folder):
        # exists(), not is_file(): a FIFO or a folder in a file's place gets read_regular's clear error.
        if all((d / f).exists() for f in CIFAR10_FILES):
            meta = d / CIFAR10_META
            files = {f: read_regular(d / f, CIFAR10_BATCH_BYTES, _("a CIFAR-10 batch")) for f in names}
            classes = _class_list(read_regular(meta, CIFAR10_META_BYTES, _("a list of class names")), meta) \
                if meta.exists() else None
            return files, classes, d
    tar_path = folder / CIFAR10_TAR
    if not tar_path.exists():
        return None
    data = read_regular(tar_path, CIFAR10_TAR_BYTES, _("the CIFAR-10 tarball"))
    wanted = {**dict.fromkeys(CIFAR10_FILES, CIFAR10_BATCH_BYTES), CIFAR10_META: CIFAR10_META_BYTES}
    files = read_tar_gz(data, tar_path, wanted, CIFAR10_UNPACKED_BYTES)
    missing = [f for f in CIFAR10_FILES if f not in files]
    if missing:
        raise DataFileError(_("{path}: not the CIFAR-10 binary tarball: missing {files}").format(
            path=tar_path, files=", ".join(missing)))
    meta = files.pop(CIFAR10_META, None)
    classes = _class_list(meta, f"{tar_path}: {CIFAR10_META}") if meta is not None else None
    _check_md5(data, tar_path, verify)  # after unpacking, so a truncated file gets the message above
    return {f: files[f] for f in names}, classes, tar_path


def load_cifar10(data_dir=None, verify=True):
    """Load CIFAR-10 from the official binary version as raw arrays, both splits.

    Training code wants load_split("cifar10", "train"), which never parses the test batch.
    Returns ((X_train, y_train), (X_test, y_test)), as _cifar10_split describes.
    """
    return load_split("cifar10", "train", data_dir, verify), load_split("cifar10", "test", data_dir, verify)


def _cifar10_split(split, data_dir=None, verify=True):
    """One CIFAR-10 split, "train" or "test", from the official binary version as raw arrays.

    Looks in data_dir (default cifar10_dir()) for the unpacked cifar-10-batches-bin folder,
    the six .bin files themselves, or cifar-10-binary.tar.gz; with no data_dir given and
    nothing found, downloads the tarball from CIFAR10_URL into cifar10_dir().
    verify: check the tarball's MD5 and the official sizes; False only for other files
    (the tests' tiny ones).
    Returns (X, y):
    - train: X (50000, 3, 32, 32) uint8, channels red, green, blue; y (50000,) int64 in 0..9
    - test: X (10000, 3, 32, 32) uint8; y (10000,) int64 in 0..9
    Raises FileNotFoundError if data_dir holds none of these, DataFileError for corrupt files.
    """
    folder = cifar10_dir() if data_dir is None else Path(data_dir)
    names = tuple(CIFAR10_FILES[:-1]) if split == "train" else (CIFAR10_FILES[-1],)
    found = _cifar10_files(folder, verify, names)
    if found is None:
        if data_dir is not None:
            raise FileNotFoundError(_("CIFAR-10 not found in {folder}: expected {tar}, a {unpacked} folder or the "
                                      "files {files}").format(folder=folder, tar=CIFAR10_TAR, unpacked=CIFAR10_FOLDER,
                                                              files=", ".join(CIFAR10_FILES)))
        _download_cifar10(folder, verify)
        found = _cifar10_files(folder, verify, names)
    files, classes, source = found
    if classes is not None and tuple(classes) != CIFAR10_CLASSES:
        shown = classes[:12] + (["..."] if len(classes) > 12 else [])
        raise DataFileError(_("{source}: {meta} lists the classes {shown}, expected {expected}").format(
            source=source, meta=CIFAR10_META, shown=shown, expected=list(CIFAR10_CLASSES)))
    batches = [read_cifar10_batch(files[f], f"{source}: {f}", verify) for f in names]
    return np.concatenate([X for X, y in batches]), np.concatenate([y for X, y in batches])


# The data sets prepare() knows: how to load each, its image shape (C, H, W), class names and
# default validation size (a tenth of the training images).
DATASETS = {
    "fashion_mnist": dict(load=load_fashion_mnist, image_shape=(1, 28, 28), class_names=CLASS_NAMES,
                          val_size=6000),
    "cifar10": dict(load=load_cifar10, image_shape=(3, 32, 32), class_names=CIFAR10_CLASSES, val_size=5000),
}
SPLIT_READERS = {"fashion_mnist": _fashion_mnist_split, "cifar10": _cifar10_split}


def load_split(dataset, split, data_dir=None, verify=True):
    """One official split of a data set as raw arrays (X uint8 (N, ...), y int64 (N,)).

    split: "train" (the images training, validation and the search draw from) or "test".
    The test split is read only where a finished model is tested: python -m utils evaluate
    and the notebooks' final test cells. Training and the search never ask for it (the tests
    check this by making this function refuse "test").
    """
    if dataset not in SPLIT_READERS or split not in ("train", "test"):
        raise ValueError(_("load_split: expected a data set in {datasets} and a split 'train' or 'test', got "
                           "{dataset} and {split}").format(datasets=sorted(SPLIT_READERS), dataset=repr(dataset),
                                                           split=repr(split)))
    return SPLIT_READERS[dataset](split, data_dir, verify)


def main(argv=None):
    parser = cli.parser("python -m utils data", _("Find or download Fashion-MNIST, verify it and print its shapes."))
    parser.add_argument("--data-dir", type=Path, default=None,
                        help=_("folder with the four .gz files (default: the Debian package's folder, "
                               "then data/fashion, where it is downloaded)"))
    args = parser.parse_args(argv)
    try:
        for name, path in fetch_fashion_mnist(args.data_dir).items():
            print(f"{name:24s} {path}")
        (X_train, y_train), (X_test, y_test) = load_fashion_mnist(args.data_dir)
    except (OSError, ValueError) as e:
        # the message says it all; a traceback would bury it
        parser.exit(1, _("error: {message}").format(message=e) + "\n")
    print(_("checksums OK; train {X_train} {X_train_dtype}, labels {y_train}; test {X_test} {X_test_dtype}, "
            "labels {y_test}").format(X_train=X_train.shape, X_train_dtype=X_train.dtype, y_train=y_train.shape,
                                      X_test=X_test.shape, X_test_dtype=X_test.dtype, y_test=y_test.shape))

