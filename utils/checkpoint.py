"""Checkpoints: a model's weights and architecture in one .npz file, written atomically.

The file holds one array per parameter ("0.W", "0.b", ...) and one JSON document,
"__meta__", with the architecture (Sequential.config()), the hyperparameters and the
metrics. Loading never unpickles anything, so even a hostile file cannot run code.
"""
import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from module import Sequential

META_KEY = "__meta__"
FORMAT_VERSION = 1


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside path; on success move it over path in one step.

    os.replace is atomic on POSIX and Windows, so a reader (or a crash) sees the old
    file or the new one, never half of one. On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes files private (0600); results are for everyone to read
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_json(obj, path):
    """Write obj as indented JSON, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, default=_to_builtin)
        f.write("\n")


def _to_builtin(x):
    """Make NumPy scalars and arrays JSON-serialisable."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def save_arrays(path, arrays, meta):
    """Write named arrays and a JSON-able dict to one .npz file, atomically."""
    if META_KEY in arrays:
        raise ValueError(f"the array name {META_KEY!r} is reserved")
    blob = np.array(json.dumps({"format_version": FORMAT_VERSION, **meta}, default=_to_builtin))
    with atomic_write(path) as f:
        np.savez(f, **arrays, **{META_KEY: blob})


def load_arrays(path):
    """Read a file written by save_arrays: returns (arrays, meta). Never unpickles."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a readable .npz checkpoint (expected a zip archive of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:  # object arrays need pickle, which we refuse
        raise ValueError(f"{path}: refused to load: {e}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz checkpoint ({e})") from None
    blob = arrays.pop(META_KEY, None)
    if blob is None or blob.dtype.kind != "U" or blob.shape != ():
        raise ValueError(f"{path}: not a checkpoint of this project (no {META_KEY!r} JSON record)")
    try:
        meta = json.loads(str(blob))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: the {META_KEY!r} record is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint format {meta.get('format_version') if isinstance(meta, dict) else meta!r}; "
                         f"expected version {FORMAT_VERSION}")
    return arrays, meta


def save_model(model, path, **metadata):
    """Save the model's weights, its architecture and any JSON-able metadata (hyperparameters, metrics)."""
    save_arrays(path, model.params, {"architecture": model.config(), **metadata})


def load_weights(model, arrays, source="checkpoint"):
    """Copy named arrays into the model's parameters, checking every name and shape first."""
    params = model.params
    missing, unexpected = params.keys() - arrays.keys(), arrays.keys() - params.keys()
    if missing or unexpected:
        raise ValueError(f"{source}: parameters do not match the model: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    for name, p in params.items():
        if arrays[name].shape != p.shape:
            layer = model.layers[int(name.split(".")[0])]
            raise ValueError(f"{source}: layer {name.split('.')[0]} ({layer!r}): parameter {name} has shape "
                             f"{p.shape} in the model but {arrays[name].shape} in the file")
    for name, p in params.items():
        p[...] = arrays[name]
    return model


def load_model(path):
    """Rebuild a model from a checkpoint alone. Returns (model, metadata)."""
    arrays, meta = load_arrays(path)
    arch = meta.pop("architecture", None)
    if not isinstance(arch, list):
        raise ValueError(f"{path}: the checkpoint has no architecture list")
    dtypes = {a.dtype for a in arrays.values()}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.float32
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"{path}: parameters must be floating point, got {dtype}")
    model = Sequential.from_config(arch, dtype=dtype)
    return load_weights(model, arrays, source=str(path)), meta
