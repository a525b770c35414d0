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

from module import Conv2D, Flatten, Linear, MaxPool2D
from utils.core import models
from utils.core.datasets import CIFAR10_CLASSES, CLASS_NAMES
from utils.plumbing.errors import CheckpointError
from utils.plumbing.files import atomic_write, npz_members, open_regular, read_npy, to_builtin
from utils.plumbing.language import _

META_KEY = "__meta__"
FORMAT_VERSION = 1
MAX_FILE_BYTES = 2 ** 31        # 2 GiB on disk, and at most that much once decompressed
MAX_ARRAY_ELEMENTS = 2 ** 28    # per array (1 GiB of float32); also the largest integer in a layer spec
MAX_META_BYTES = 2 ** 26        # the JSON record: architecture, hyperparameters, history
MAX_LAYERS = 1000
MAX_MEMBERS = 10_000
MAX_IMAGE_SIDE = 4096
# The data sets a checkpoint may name: the shape of one image, (C, H, W), and the class names.
DATASETS = {"fashion_mnist": ((1, 28, 28), CLASS_NAMES), "cifar10": ((3, 32, 32), CIFAR10_CLASSES)}
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
TEXT = (np.dtype("U"),)         # the JSON record: one string, of any length
# What a damaged or hostile archive makes zipfile and numpy raise, besides MemoryError.
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, ValueError, TypeError, KeyError, IndexError,
                NotImplementedError, RuntimeError, OverflowError, UnicodeError, SyntaxError, RecursionError,
                tokenize.TokenError)  # numpy parses a .npy header's dict with the tokenizer


def save_arrays(path, arrays, meta):
    """Write named arrays and a JSON-able dict to one .npz file, atomically."""
    if META_KEY in arrays:
        raise ValueError(_("the array name {name} is reserved").format(name=repr(META_KEY)))
    blob = np.array(json.dumps({"format_version": FORMAT_VERSION, **meta}, default=to_builtin))
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
        with open_regular(path, MAX_FILE_BYTES, _("a checkpoint"), CheckpointError) as f, zipfile.ZipFile(f) as archive:
            members = npz_members(archive, path, MAX_MEMBERS, MAX_FILE_BYTES, CheckpointError)
            record = members.pop(META_KEY, None)
            if record is None:
                raise CheckpointError(_("{path}: not a checkpoint of this project (no {key} JSON record)").format(
                    path=path, key=repr(META_KEY)))
            if record.file_size > MAX_META_BYTES:
                raise CheckpointError(_("{path}: refused to load: the {key} record is {size} bytes; expected at most "
                                        "{limit}").format(path=path, key=repr(META_KEY), size=f"{record.file_size:,}",
                                                          limit=f"{MAX_META_BYTES:,}"))
            meta = _parse_meta(read_npy(archive, record, path, CheckpointError, shape=(), dtypes=TEXT), path)
            shapes = expected_shapes(meta) if expected_shapes else None
            if shapes is not None and shapes.keys() != members.keys():
                raise CheckpointError(_("{path}: refused to load: the arrays do not match the architecture: missing "
                                        "{missing}, unexpected {unexpected}").format(
                    path=path, missing=sorted(shapes.keys() - members.keys()),
                    unexpected=sorted(members.keys() - shapes.keys())))
            arrays = {name: read_npy(archive, info, path, CheckpointError, shapes[name] if shapes else None,
                                     dtypes=FLOATS, max_elements=MAX_ARRAY_ELEMENTS, finite=True,
                                     shape_from=_("the architecture"))
                      for name, info in members.items()}
    except CheckpointError:
        raise
    except _READ_ERRORS as e:
        if isinstance(e, FileNotFoundError):
            raise FileNotFoundError(_("no checkpoint at {path}").format(path=path)) from None
        raise CheckpointError(_("{path}: refused to load: not a readable .npz checkpoint ({error}); expected a zip "
                                "archive of .npy arrays").format(path=path, error=f"{type(e).__name__}: {e}")) from None
    return arrays, meta


def _parse_meta(blob, path):
    """The JSON record as a dict with format_version FORMAT_VERSION, or CheckpointError."""
    try:
        meta = json.loads(str(blob[()]))
    except (ValueError, RecursionError) as e:
        raise CheckpointError(_("{path}: refused to load: the {key} record is not valid JSON ({error})").format(
            path=path, key=repr(META_KEY), error=e)) from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if type(version) is not int or version != FORMAT_VERSION:
        raise CheckpointError(_("{path}: refused to load: unsupported checkpoint format {found}; expected a JSON "
                                "object with format_version {version}").format(
            path=path, found=repr(version if isinstance(meta, dict) else type(meta).__name__), version=FORMAT_VERSION))
    return meta


def save_model(model, path, **metadata):
    """Save the model's weights, its architecture and any JSON-able metadata (hyperparameters, metrics)."""
    save_arrays(path, model.params, {"architecture": model.config(), **metadata})


def load_weights(model, arrays, source="checkpoint"):
    """Copy named arrays into the model's parameters, checking every name, shape and dtype first."""
    params = model.params
    missing, unexpected = params.keys() - arrays.keys(), arrays.keys() - params.keys()
    if missing or unexpected:
        raise CheckpointError(_("{source}: parameters do not match the model: missing {missing}, unexpected "
                                "{unexpected}").format(source=source, missing=sorted(missing),
                                                       unexpected=sorted(unexpected)))
    for name, p in params.items():
        a, layer = arrays[name], _("layer {i} ({layer})").format(i=name.split('.')[0],
                                                                 layer=repr(model.layers[int(name.split('.')[0])]))
        if not isinstance(a, np.ndarray) or a.shape != p.shape:
            raise CheckpointError(_("{source}: {layer}: parameter {name} has shape {shape} in the model but {found} "
                                    "in the file").format(source=source, layer=layer, name=name, shape=p.shape,
                                                          found=getattr(a, 'shape', type(a).__name__)))
        if a.dtype != p.dtype:
            raise CheckpointError(_("{source}: {layer}: parameter {name} is {dtype} in the model but {found} in the "
                                    "file; dtypes are never converted silently").format(
                source=source, layer=layer, name=name, dtype=p.dtype, found=a.dtype))
    for name, p in params.items():
        p[...] = arrays[name]
    return model


def _architecture_shapes(meta, path):
    """{parameter name: shape} implied by meta["architecture"], checked without building anything."""
    arch = meta.get("architecture")
    if not isinstance(arch, list) or not 1 <= len(arch) <= MAX_LAYERS:
        got = _("{n} layers").format(n=len(arch)) if isinstance(arch, list) else type(arch).__name__
        raise CheckpointError(_("{path}: refused to load: the architecture must be a list of 1 to {limit} "
                                "layer dicts, got {got}").format(path=path, limit=MAX_LAYERS, got=got))
    for i, spec in enumerate(arch):
        for key, value in spec.items() if isinstance(spec, dict) else ():
            if not isinstance(value, (str, int, float, bool, type(None))) or (
                    isinstance(value, int) and abs(value) > MAX_ARRAY_ELEMENTS):
                raise CheckpointError(_("{path}: refused to load: layer {i}: argument {key} = {value}; expected a "
                                        "number (at most {limit}), a string or a bool").format(
                    path=path, i=i, key=repr(key), value=f"{value!r:.80}", limit=f"{MAX_ARRAY_ELEMENTS:,}"))
    try:
        shapes = models.param_shapes(arch)
    except (TypeError, ValueError) as e:
        raise CheckpointError(_("{path}: refused to load: bad architecture: {error}").format(
            path=path, error=e)) from None
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    if sizes and (max(sizes.values()) > MAX_ARRAY_ELEMENTS or sum(sizes.values()) > MAX_FILE_BYTES // 4):
        raise CheckpointError(_("{path}: refused to load: the architecture needs {total} weights, {largest} in one "
                                "array; at most {per_array} per array and {limit} in all").format(
            path=path, total=f"{sum(sizes.values()):,}", largest=f"{max(sizes.values()):,}",
            per_array=f"{MAX_ARRAY_ELEMENTS:,}", limit=f"{MAX_FILE_BYTES // 4:,}"))
    return shapes


def load_model(path):
    """Rebuild a model from a checkpoint alone. Returns (model, metadata).

    The whole file is checked first (see the module docstring), so a model is only
    allocated for an architecture whose every weight is in the file with the right shape.
    The metadata (hyperparameters, metrics such as val_acc) is returned as it was recorded
    when the file was written, after check_record has checked its types and its agreement
    with the architecture; the metrics are not re-verified against the weights.
    """
    def expected_shapes(m):
        shapes = _architecture_shapes(m, path)
        check_record(m, path)
        return shapes

    arrays, meta = load_arrays(path, expected_shapes=expected_shapes)
    arch = meta.pop("architecture")
    dtypes = {a.dtype for a in arrays.values()} or {np.dtype(np.float32)}  # no weights: any dtype will do
    if len(dtypes) != 1:
        raise CheckpointError(_("{path}: refused to load: parameters of several dtypes {dtypes}; expected one, "
                                "float32 or float64").format(path=path, dtypes=sorted(map(str, dtypes))))
    try:
        model = models.from_config(arch, dtype=dtypes.pop())
    except ValueError as e:
        raise CheckpointError(_("{path}: refused to load: bad architecture: {error}").format(
            path=path, error=e)) from None
    return load_weights(model, arrays, source=str(path)), meta


# ---------------------------------------------------------------- the record beside the weights

def _refuse(path, key, value, expected):
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise CheckpointError(_("{path}: refused to load: the record's {key} = {value}; expected {expected}").format(
        path=path, key=key, value=shown, expected=expected))


def _is_number(v, low=-math.inf, high=math.inf):
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and low <= v <= high)


def check_record(meta, path):
    """Check what a checkpoint records besides the weights, against its architecture; returns meta.

    Every key is optional (save_model takes any metadata), but a key that is there must hold
    what utils.core.experiment.experiment_metadata and train() write: a known data set whose
    image shape matches the model's input, a finite mean in [0, 1] and std in (0, 1] (the
    training statistics on the [0, 1] scale), one class name per output, the experiment and
    the metrics as tables, the epoch as a count. The layer shapes are followed from the image
    through every layer, so a Conv2D whose padding or stride does not fit the image is
    refused here, not by a huge allocation or by a later layer. Raises CheckpointError naming
    the file, the key, the value and what is expected.
    """
    specs = models.layer_specs(meta["architecture"])  # already checked by _architecture_shapes
    dataset = meta.get("dataset")
    if "dataset" in meta and (not isinstance(dataset, str) or dataset not in DATASETS):
        _refuse(path, "dataset", dataset, _("one of {names}").format(names=", ".join(map(repr, DATASETS))))
    image = DATASETS[dataset][0] if dataset else None
    if "image_shape" in meta:
        shape = meta["image_shape"]
        if (not isinstance(shape, list) or len(shape) != 3
                or not all(_is_number(d, 1, MAX_IMAGE_SIDE) and isinstance(d, int) for d in shape)):
            _refuse(path, "image_shape", shape, _("[channels, height, width], integers in 1..{limit}").format(
                limit=MAX_IMAGE_SIDE))
        if image is not None and tuple(shape) != image:
            _refuse(path, "image_shape", shape, _("{shape}, the shape of a {dataset} image").format(
                shape=list(image), dataset=dataset))
        image = tuple(shape)
    for key, low, high, text in (("mean", 0, 1, _("a finite number in [0, 1]")),
                                 ("std", 1e-6, 1, _("a finite number in (0, 1]"))):
        if ("mean" in meta or "std" in meta) and not _is_number(meta.get(key), low, high):
            _refuse(path, key, meta.get(key, "(missing)"), _("{text}, the training data's {key} on the [0, 1] "
                                                             "scale (mean and std come together)").format(
                text=text, key=key))
    outputs = _walk(specs, image, dataset, path)
    names = meta.get("class_names")
    if "class_names" in meta:
        if not isinstance(names, list) or not all(isinstance(n, str) and 0 < len(n) <= 100 for n in names):
            _refuse(path, "class_names", names, _("a list of {n} names (texts of 1 to 100 characters)").format(
                n=outputs))
        if outputs is not None and len(names) != outputs:
            _refuse(path, "class_names", names, _("{n} names, one per output of the model").format(n=outputs))
    if dataset and outputs is not None and outputs != len(DATASETS[dataset][1]):
        _refuse(path, "dataset", dataset, _("a data set of {n} classes, as the model has {n} outputs "
                                            "({dataset} has {classes})").format(
            n=outputs, dataset=dataset, classes=len(DATASETS[dataset][1])))
    for key in ("experiment", "metrics", "hyperparameters"):
        if key in meta and not isinstance(meta[key], dict):
            _refuse(path, key, meta[key], _("a table (a JSON object)"))
    name = meta.get("experiment", {}).get("name", "")
    if not isinstance(name, str):
        _refuse(path, "experiment.name", name, _("a text"))
    for key, value in meta.get("metrics", {}).items():
        if not (value is None or _is_number(value)):
            _refuse(path, f"metrics.{key}", value, _("a finite number"))
    if "val_acc" in meta.get("metrics", {}) and not _is_number(meta["metrics"]["val_acc"], 0, 1):
        _refuse(path, "metrics.val_acc", meta["metrics"]["val_acc"], _("an accuracy in [0, 1]"))
    if "epoch" in meta and not (isinstance(meta["epoch"], int) and _is_number(meta["epoch"], 0)):
        _refuse(path, "epoch", meta["epoch"], _("an epoch number, an integer >= 0"))
    return meta


def _walk(specs, image, dataset, path):
    """Follow one input's shape through the layers; returns the number of outputs (None without weights).

    image: (C, H, W), or None if unknown.

    A Linear first layer takes the image as a flat row; a Conv2D first layer an image, whose
    shape is inferred from its channels (1: Fashion-MNIST, 3: CIFAR-10) when the record does not
    say. Without a known image, a Conv2D's padding must still be below its kernel size.
    """
    first, args = specs[0]
    if image is None and first is Conv2D:
        image = next((shape for shape, names in DATASETS.values() if shape[0] == args["in_channels"]), None)
    shape = None if image is None else (math.prod(image),) if first is Linear else image
    source = (_("a {dataset} image {shape}").format(dataset=dataset, shape=list(image)) if dataset
              else _("an image {shape}").format(shape=list(image or ())))
    outputs = None
    for i, (kind, args) in enumerate(specs):
        where = _("layer {i} ({layer})").format(i=i, layer=kind.__name__)

        def refuse(key, value, expected, where=where, first=i == 0):
            if first and image is not None and key in ("in_features", "in_channels"):
                # The first layer is as the weights say; what does not fit it is the recorded input.
                gives = (_("{n} inputs").format(n=math.prod(image)) if key == "in_features"
                         else _("{n} channels").format(n=image[0]))
                expected = _("images that fit the first layer, {where} with {key} = {value}; {source} gives "
                             "{gives}").format(where=where, key=key, value=value, source=source, gives=gives)
                key, value = ("dataset", dataset) if dataset else ("image_shape", list(image))
            _refuse(path, key if first and key in ("dataset", "image_shape")
                    else _("architecture, {where}, {key}").format(where=where, key=key),
                    value, expected)

        if kind is Conv2D:
            k, p, s = args["kernel_size"], args.get("padding", 0), args.get("stride", 1)
            if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p < k:
                refuse("padding", p, _("an integer in 0..{high} (below the kernel size {k})").format(high=k - 1, k=k))
            if shape is not None:
                if len(shape) != 3 or shape[0] != args["in_channels"]:
                    refuse("in_channels", args["in_channels"], _("the input's channels: its input has shape "
                                                                 "{shape}, from {source}").format(
                        shape=shape, source=source))
                side = min(shape[1:]) + 2 * p
                if side < k:
                    refuse("kernel_size", k, _("at most {side}, the side of its input {shape} padded by {p}").format(
                        side=side, shape=shape, p=p))
                if not isinstance(s, int) or isinstance(s, bool) or not 1 <= s <= side - k + 1:
                    refuse("stride", s, _("an integer in 1..{high}, so that the kernel moves within its input "
                                          "{shape} padded by {p}").format(high=side - k + 1, shape=shape, p=p))
                shape = (args["out_channels"], *((d + 2 * p - k) // s + 1 for d in shape[1:]))
            outputs = args["out_channels"]
        elif kind is MaxPool2D and shape is not None:
            k, s = args["kernel_size"], args.get("stride") or args["kernel_size"]
            if len(shape) != 3 or min(shape[1:]) < k:
                refuse("kernel_size", k, _("at most the side of its input, shape {shape} (from {source})").format(
                    shape=shape, source=source))
            if not isinstance(s, int) or isinstance(s, bool) or not 1 <= s <= min(shape[1:]):
                refuse("stride", s, _("an integer in 1..{high}, within its input {shape}").format(
                    high=min(shape[1:]), shape=shape))
            shape = (shape[0], *((d - k) // s + 1 for d in shape[1:]))
        elif kind is Flatten and shape is not None:
            shape = (math.prod(shape),)
        elif kind is Linear:
            if shape is not None and shape != (args["in_features"],):
                refuse("in_features", args["in_features"], _("{n}, the size of its input {shape} (from "
                                                             "{source})").format(n=math.prod(shape), shape=shape,
                                                                                 source=source))
            shape, outputs = (args["out_features"],), args["out_features"]
    return outputs
