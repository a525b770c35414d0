"""Checkpoints: a model's weights and architecture in one .npz file, written atomically.

The file holds one array per parameter ("0.W", "0.b", ...) and one JSON document,
"__meta__", with the architecture (Sequential.config()), the hyperparameters and the
metrics. Loading never unpickles anything, so even a hostile file cannot run code, and it
checks the whole file before it builds anything: a regular file of bounded size; a zip
archive of .npy members, stored or deflated, not encrypted, each member's size bounded by
its header and again while it is read; float32 or float64 arrays, finite; and, in
load_model, the shapes the architecture implies, before the model is allocated. The reading
is done by the .npz readers of utils.plumbing.files, with the checkpoint's own limits. Whatever
is wrong raises CheckpointError (a ValueError) naming the file and what was expected.
"""
import json
import math
import tokenize
import zipfile
from pathlib import Path

import numpy as np

from utils.core import models
from utils.plumbing.errors import CheckpointError
from utils.plumbing.files import _to_builtin, atomic_write, npz_members, open_regular, read_npy

META_KEY = "__meta__"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 2 ** 31        # 2 GiB on disk, and at most that much once decompressed
MAX_ARRAY_ELEMENTS = 2 ** 28    # per array (1 GiB of float32); also the largest integer in a layer spec
MAX_META_BYTES = 2 ** 26        # the JSON record: architecture, hyperparameters, history
MAX_LAYERS = 1000
MAX_MEMBERS = 10_000
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
TEXT = (np.dtype("U"),)         # the JSON record: one string, of any length
# What a damaged or hostile archive makes zipfile and numpy raise, besides MemoryError.
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, ValueError, TypeError, KeyError, IndexError,
                NotImplementedError, RuntimeError, OverflowError, UnicodeError, SyntaxError, RecursionError,
                tokenize.TokenError)  # numpy parses a .npy header's dict with the tokenizer


def save_arrays(path, arrays, meta):
    """Write named arrays and a JSON-able dict to one .npz file, atomically."""
    if META_KEY in arrays:
        raise ValueError(f"the array name {META_KEY!r} is reserved")
    blob = np.array(json.dumps({"format_version": FORMAT_VERSION, **meta}, default=_to_builtin))
    with atomic_write(path) as f:
        np.savez(f, **arrays, **{META_KEY: blob})


def load_arrays(path, expected_shapes=None):
    """Read a file written by save_arrays: returns (arrays, meta), all checked. Never unpickles.

    expected_shapes: optional function meta -> {name: shape}; then the file must hold exactly
    those arrays, and each member's shape and size are compared before its data is read.
    Raises FileNotFoundError if there is no file, CheckpointError for anything else wrong.
    """
    path = Path(path)
    try:
        with open_regular(path, MAX_FILE_BYTES, "a checkpoint", CheckpointError) as f, zipfile.ZipFile(f) as archive:
            members = npz_members(archive, path, MAX_MEMBERS, MAX_FILE_BYTES, CheckpointError)
            record = members.pop(META_KEY, None)
            if record is None:
                raise CheckpointError(f"{path}: not a checkpoint of this project (no {META_KEY!r} JSON record)")
            if record.file_size > MAX_META_BYTES:
                raise CheckpointError(f"{path}: refused to load: the {META_KEY!r} record is {record.file_size:,} "
                                      f"bytes; expected at most {MAX_META_BYTES:,}")
            meta = _parse_meta(read_npy(archive, record, path, CheckpointError, shape=(), dtypes=TEXT), path)
            shapes = expected_shapes(meta) if expected_shapes else None
            if shapes is not None and shapes.keys() != members.keys():
                raise CheckpointError(f"{path}: refused to load: the arrays do not match the architecture: missing "
                                      f"{sorted(shapes.keys() - members.keys())}, unexpected "
                                      f"{sorted(members.keys() - shapes.keys())}")
            arrays = {name: read_npy(archive, info, path, CheckpointError, shapes[name] if shapes else None,
                                     dtypes=FLOATS, max_elements=MAX_ARRAY_ELEMENTS, finite=True,
                                     shape_from="the architecture")
                      for name, info in members.items()}
    except CheckpointError:
        raise
    except _READ_ERRORS as e:
        if isinstance(e, FileNotFoundError):
            raise FileNotFoundError(f"no checkpoint at {path}") from None
        raise CheckpointError(f"{path}: refused to load: not a readable .npz checkpoint "
                              f"({type(e).__name__}: {e}); expected a zip archive of .npy arrays") from None
    return arrays, meta


def _parse_meta(blob, path):
    """The JSON record as a dict with format_version FORMAT_VERSION, or CheckpointError."""
    try:
        meta = json.loads(str(blob[()]))
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: refused to load: the {META_KEY!r} record is not valid JSON ({e})") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if type(version) is not int or version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: refused to load: unsupported checkpoint format "
                              f"{version if isinstance(meta, dict) else type(meta).__name__!r}; "
                              f"expected a JSON object with format_version {FORMAT_VERSION}")
    return meta


def save_model(model, path, **metadata):
    """Save the model's weights, its architecture and any JSON-able metadata (hyperparameters, metrics)."""
    save_arrays(path, model.params, {"architecture": model.config(), **metadata})


def load_weights(model, arrays, source="checkpoint"):
    """Copy named arrays into the model's parameters, checking every name, shape and dtype first."""
    params = model.params
    missing, unexpected = params.keys() - arrays.keys(), arrays.keys() - params.keys()
    if missing or unexpected:
        raise CheckpointError(f"{source}: parameters do not match the model: missing {sorted(missing)}, "
                              f"unexpected {sorted(unexpected)}")
    for name, p in params.items():
        a, layer = arrays[name], f"layer {name.split('.')[0]} ({model.layers[int(name.split('.')[0])]!r})"
        if not isinstance(a, np.ndarray) or a.shape != p.shape:
            raise CheckpointError(f"{source}: {layer}: parameter {name} has shape {p.shape} in the model but "
                                  f"{getattr(a, 'shape', type(a).__name__)} in the file")
        if a.dtype != p.dtype:
            raise CheckpointError(f"{source}: {layer}: parameter {name} is {p.dtype} in the model but {a.dtype} "
                                  "in the file; dtypes are never converted silently")
    for name, p in params.items():
        p[...] = arrays[name]
    return model


def _architecture_shapes(meta, path):
    """{parameter name: shape} implied by meta["architecture"], checked without building anything."""
    arch = meta.get("architecture")
    if not isinstance(arch, list) or not 1 <= len(arch) <= MAX_LAYERS:
        got = f"{len(arch)} layers" if isinstance(arch, list) else type(arch).__name__
        raise CheckpointError(f"{path}: refused to load: the architecture must be a list of 1 to {MAX_LAYERS} "
                              f"layer dicts, got {got}")
    for i, spec in enumerate(arch):
        for key, value in spec.items() if isinstance(spec, dict) else ():
            if not isinstance(value, (str, int, float, bool, type(None))) or (
                    isinstance(value, int) and abs(value) > MAX_ARRAY_ELEMENTS):
                raise CheckpointError(f"{path}: refused to load: layer {i}: argument {key!r} = {value!r:.80}; "
                                      f"expected a number (at most {MAX_ARRAY_ELEMENTS:,}), a string or a bool")
    try:
        shapes = models.param_shapes(arch)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: refused to load: bad architecture: {e}") from None
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    if sizes and (max(sizes.values()) > MAX_ARRAY_ELEMENTS or sum(sizes.values()) > MAX_FILE_BYTES // 4):
        raise CheckpointError(f"{path}: refused to load: the architecture needs {sum(sizes.values()):,} weights, "
                              f"{max(sizes.values()):,} in one array; at most {MAX_ARRAY_ELEMENTS:,} per array "
                              f"and {MAX_FILE_BYTES // 4:,} in all")
    return shapes


def load_model(path):
    """Rebuild a model from a checkpoint alone. Returns (model, metadata).

    The whole file is checked first (see the module docstring), so a model is only
    allocated for an architecture whose every weight is in the file with the right shape.
    The metadata (hyperparameters, metrics such as val_acc) is returned as it was recorded
    when the file was written: it is not re-verified against the weights.
    """
    arrays, meta = load_arrays(path, expected_shapes=lambda m: _architecture_shapes(m, path))
    arch = meta.pop("architecture")
    dtypes = {a.dtype for a in arrays.values()} or {np.dtype(np.float32)}  # no weights: any dtype will do
    if len(dtypes) != 1:
        raise CheckpointError(f"{path}: refused to load: parameters of several dtypes {sorted(map(str, dtypes))}; "
                              "expected one, float32 or float64")
    try:
        model = models.from_config(arch, dtype=dtypes.pop())
    except ValueError as e:
        raise CheckpointError(f"{path}: refused to load: bad architecture: {e}") from None
    return load_weights(model, arrays, source=str(path)), meta
