"""Files in and out: writes that are atomic (atomic_write, from utils.plumbing.atomic), and reads of files that
may be hostile at a bounded cost (refuse what is not a regular file, cap every size before the bytes are read or
decompressed). Their messages are in the reader's language (utils.plumbing.language).

The data loaders (utils.core.datasets) read IDX, CIFAR-10 and .npz files through these helpers, so a
FIFO never hangs a read, and a gzip, tar or zip bomb costs at most the size the caller
expects of a genuine file. Every error names the file and what was expected; the error
type is the caller's choice (DataFileError by default; a checkpoint reader can pass its own).
"""
import json
import math
import os
import stat
import struct
import tarfile
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

# atomic_write lives in atomic.py, which po.py imports: this module reads the language's catalogs (through po),
# so po must not import it. Imported here too, for the callers that take it from this module.
from utils.plumbing.atomic import STALE_SECONDS, atomic_write, remove_stale_temporaries  # noqa: F401
from utils.plumbing.errors import DataFileError
from utils.plumbing.language import _

KINDS = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
         stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}


def _kind_words(kind):
    """A KINDS name (or "a special file") in the reader's language, for a message."""
    return {"a directory": _("a directory"), "a FIFO": _("a FIFO"), "a character device": _("a character device"),
            "a block device": _("a block device"), "a socket": _("a socket"),
            "a special file": _("a special file")}.get(kind, kind)


def save_json(obj, path):
    """Write obj as indented JSON, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, default=to_builtin)
        f.write("\n")


def to_builtin(x):
    """Make NumPy scalars and arrays JSON-serialisable."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(_("cannot write {type} to JSON").format(type=type(x).__name__))


def _check_regular(st, path, max_bytes, what, error):
    """Refuse, by its stat result st, a path that is not a regular file of at most max_bytes bytes."""
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in KINDS.items() if test(st.st_mode)), "a special file")
        raise error(_("{path}: is {kind}; expected {what} (a regular file)").format(
            path=path, kind=_kind_words(kind), what=what))
    if st.st_size > max_bytes:
        raise error(_("{path}: {size} bytes, more than the {limit} bytes {what} can have (refused unread)").format(
            path=path, size=f"{st.st_size:,}", limit=f"{max_bytes:,}", what=what))


def open_regular(path, max_bytes, what, error=DataFileError):
    """Open path for binary reading if it is a regular file of at most max_bytes bytes.

    what: what the file should be, for the messages (e.g. "an IDX file").
    Checks with stat before opening (so a FIFO is never opened, never hangs), then again on
    the open descriptor (so a file swapped in between is caught too).
    Raises FileNotFoundError if path does not exist, error if it is not a regular file or too large.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(_("{path}: no such file; expected {what}").format(path=path, what=what)) from None
    _check_regular(st, path, max_bytes, what, error)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # O_NONBLOCK: opening a FIFO cannot block
    f = os.fdopen(fd, "rb")
    try:
        _check_regular(os.fstat(fd), path, max_bytes, what, error)
    except BaseException:
        f.close()
        raise
    return f


def read_regular(path, max_bytes, what, error=DataFileError):
    """The bytes of path, if it is a regular file of at most max_bytes bytes (see open_regular)."""
    with open_regular(path, max_bytes, what, error) as f:
        # read(n) allocates n bytes up front: ask for the size stat gave, + 1 to catch a file that grew.
        data = f.read(min(os.fstat(f.fileno()).st_size, max_bytes) + 1)
    if len(data) > max_bytes:
        raise error(_("{path}: more than the {limit} bytes {what} can have").format(
            path=path, limit=f"{max_bytes:,}", what=what))
    return data


class Gunzip:
    """Decompress gzip data on demand, never more than asked for and never more than limit bytes.

    read(n) returns the next n decompressed bytes (fewer only at the end), so a reader can look
    at a header first and ask for exactly the size it announces: a gzip bomb then costs what the
    header announces, not what the bomb holds. Several gzip members in a row are one stream, as
    for gzip.decompress; zero padding after the last one is ignored, anything else is an error.
    """

    def __init__(self, data, name, limit, error=DataFileError, label=None):
        """label: what the data is when it does not decompress, for the messages (default "corrupt gzip data")."""
        self.rest, self.name, self.limit, self.error, self.label = data, name, limit, error, label
        self.produced, self.inflater = 0, zlib.decompressobj(16 + zlib.MAX_WBITS)

    def read(self, n=-1):
        n = self.limit + 1 - self.produced if n is None or n < 0 else n
        out = self._inflate(min(n, self.limit + 1 - self.produced))
        self.produced += len(out)
        if self.produced > self.limit:
            raise self.error(_("{name}: decompresses to more than {limit} bytes, more than the file can hold").format(
                name=self.name, limit=f"{self.limit:,}"))
        return out

    def _inflate(self, n):
        out, size = [], 0
        label = _("corrupt gzip data") if self.label is None else self.label
        try:
            while size < n:
                if self.inflater.eof:
                    tail = self.inflater.unused_data.lstrip(b"\0")
                    if not tail:
                        break
                    if tail[:2] != b"\x1f\x8b":
                        raise self.error(_("{name}: {label} (trailing garbage after the stream)").format(
                            name=self.name, label=label))
                    self.rest, self.inflater = tail, zlib.decompressobj(16 + zlib.MAX_WBITS)
                chunk = self.inflater.decompress(self.rest, n - size)  # n - size > 0: 0 would mean no cap
                self.rest = self.inflater.unconsumed_tail
                out.append(chunk)
                size += len(chunk)
                if not chunk and not self.rest and not self.inflater.eof:
                    raise self.error(_("{name}: {label} (truncated: the stream ends early)").format(
                        name=self.name, label=label))
        except zlib.error as e:
            raise self.error(_("{name}: {label} ({error})").format(name=self.name, label=label, error=e)) from None
        return b"".join(out)  # one chunk (the usual case) is returned as is, not copied


def read_tar_gz(data, name, wanted, max_unpacked, max_members=64, error=DataFileError):
    """The members of a tar.gz (bytes) whose base names are keys of wanted, read in memory.

    wanted: {base name: the most bytes that member may have}. Never extracts to disk, so member
    names cannot write anywhere. The whole archive may unpack to at most max_unpacked bytes and
    hold at most max_members entries; links, devices and the like are skipped.
    Returns {base name: bytes} for the wanted members found (the caller says which are missing).
    """
    stream = Gunzip(data, name, max_unpacked, error, label=_("corrupt or truncated tar.gz"))
    found = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # "r|": a stream, read once in order
            for count, member in enumerate(tar, start=1):
                if count > max_members:
                    raise error(_("{name}: more than {limit} entries; expected a few data files").format(
                        name=name, limit=max_members))
                base = Path(member.name).name
                if not member.isfile() or base not in wanted:
                    continue
                if member.size > wanted[base]:
                    raise error(_("{name}: member {member} is {size} bytes, more than the {limit} bytes it can "
                                  "have").format(name=name, member=member.name, size=f"{member.size:,}",
                                                 limit=f"{wanted[base]:,}"))
                found[base] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise error(_("{name}: corrupt or truncated tar.gz ({error})").format(name=name, error=e)) from None
    return found


ZIP_END = struct.Struct("<4s4H2LH")  # end of central directory record, 22 bytes + comment


def _check_zip_directory(f, size, path, max_members, error):
    """Refuse a zip whose central directory is larger than max_members entries could need,
    before zipfile builds an object for every entry."""
    f.seek(max(0, size - ZIP_END.size - 0xFFFF))
    tail = f.read()
    i = tail.rfind(b"PK\x05\x06")  # the same search zipfile makes
    if i < 0 or len(tail) - i < ZIP_END.size:
        raise error(_("{path}: not a zip archive (no end-of-directory record); expected an .npz file").format(
            path=path))
    entries, dir_size = ZIP_END.unpack_from(tail, i)[4:6]
    if i >= 20 and tail[i - 20:i - 16] == b"PK\x06\x07":
        raise error(_("{path}: a ZIP64 archive; expected an .npz of at most {limit} arrays").format(
            path=path, limit=max_members))
    if entries > max_members or dir_size > 1024 * max_members:
        raise error(_("{path}: {entries} entries in a {size}-byte directory; expected an .npz of at most {limit} "
                      "arrays").format(path=path, entries=entries, size=f"{dir_size:,}", limit=max_members))
    f.seek(0)


def npz_members(z, path, max_members, max_unpacked, error=DataFileError):
    """{array name: ZipInfo} of an open .npz archive z, each member checked before anything is read.

    Refused with error: more than max_members members, a member that is not a .npy file (or
    appears twice, or is encrypted, or is compressed other than stored or deflated, which is
    what np.savez and np.savez_compressed write), members unpacking to more than max_unpacked bytes.
    """
    infos = z.infolist()
    if len(infos) > max_members:
        raise error(_("{path}: {count} members; expected at most {limit} arrays").format(
            path=path, count=len(infos), limit=max_members))
    members, total = {}, 0
    for info in infos:
        name = info.filename.removesuffix(".npy")
        problem = (_("is not a .npy array; expected only arrays")
                   if not info.filename.endswith(".npy") or info.is_dir()
                   else _("appears twice") if name in members
                   else _("is encrypted; expected plain arrays") if info.flag_bits & 0x1
                   else _("uses compression method {method}; expected stored or deflated, as np.savez writes (zip "
                          "methods 0 or 8)").format(method=info.compress_type)
                   if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) else None)
        if problem:
            raise error(_("{path}: member {member} {problem}").format(
                path=path, member=repr(info.filename), problem=problem))
        total += info.file_size
        if total > max_unpacked:
            raise error(_("{path}: its members unpack to more than {limit} bytes").format(
                path=path, limit=f"{max_unpacked:,}"))
        members[name] = info
    return members


def read_npy(z, info, path, error=DataFileError, shape=None, dtypes=None, max_elements=None, finite=False,
             shape_from=None):
    """One .npy member of an open zip z -> array, read only after its header has been checked.

    The header must be .npy format 1.0 or 2.0 and announce: a dtype without Python objects (they
    would need pickle) and, if given, one of dtypes (an unsized one such as np.dtype("U") stands
    for strings of any length); shape, if given (shape_from names what implies it, for the
    message, e.g. "the architecture"); at most max_elements elements, if given; and exactly the
    bytes the member holds. Then exactly those bytes are read, in chunks (no second copy of a
    large array), and the member must end there (reaching the end makes zipfile check its CRC).
    finite: refuse an array holding NaN or inf.
    """
    where = _("{path}: array {name}").format(path=path, name=repr(info.filename.removesuffix(".npy")))
    dtypes = None if dtypes is None else [np.dtype(d) for d in dtypes]
    with z.open(info) as m:
        version = np.lib.format.read_magic(m)
        if version not in ((1, 0), (2, 0)):
            raise error(_("{where}: .npy format version {version}; expected 1.0 or 2.0").format(
                where=where, version=version))
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        stored_shape, fortran_order, dtype = read_header(m, max_header_size=10_000)
        expected = _("numbers or strings") if dtypes is None else _(" or ").join(
            str(d) if d.itemsize else _("{dtype} of any length").format(dtype=d.name) for d in dtypes)
        if dtype.hasobject:
            raise error(_("{where} holds Python objects (dtype {dtype}), which would need pickle; expected "
                          "{expected}").format(where=where, dtype=dtype, expected=expected))
        if dtypes is not None and not any(dtype == d if d.itemsize else dtype.kind == d.kind for d in dtypes):
            raise error(_("{where} has dtype {dtype}; expected {expected}").format(
                where=where, dtype=dtype, expected=expected))
        if shape is not None and stored_shape != tuple(shape):
            if shape_from:
                raise error(_("{where} has shape {shape}; {source} implies {expected}").format(
                    where=where, shape=stored_shape, source=shape_from, expected=tuple(shape)))
            raise error(_("{where} has shape {shape}; expected {expected}").format(
                where=where, shape=stored_shape, expected=tuple(shape)))
        count = math.prod(stored_shape)
        if max_elements is not None and count > max_elements:
            raise error(_("{where}: shape {shape} has {count} elements; expected at most {limit}").format(
                where=where, shape=stored_shape, count=f"{count:,}", limit=f"{max_elements:,}"))
        nbytes, left = count * dtype.itemsize, info.file_size - m.tell()
        if nbytes > left:
            raise error(_("{where}: its header announces shape {shape} of {dtype} ({nbytes} bytes) but only {left} "
                          "bytes follow").format(where=where, shape=stored_shape, dtype=dtype, nbytes=f"{nbytes:,}",
                                                 left=f"{left:,}"))
        if nbytes < left:  # trailing data, or a bomb behind a small header
            raise error(_("{where}: shape {shape} of {dtype} needs {nbytes} bytes; the member holds {left}: more "
                          "than its header declares").format(where=where, shape=stored_shape, dtype=dtype,
                                                             nbytes=f"{nbytes:,}", left=f"{left:,}"))
        out = np.empty(count, dtype)
        buffer, filled = (out.view(np.uint8) if nbytes else None), 0
        while filled < nbytes:
            chunk = m.read(min(1 << 22, nbytes - filled))
            if not chunk:
                raise error(_("{where} is truncated: {filled} of the {nbytes} bytes its header declares").format(
                    where=where, filled=f"{filled:,}", nbytes=f"{nbytes:,}"))
            buffer[filled:filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
            filled += len(chunk)
        if m.read(1):  # reaching the end also makes zipfile check the CRC
            raise error(_("{where} holds more data than the {nbytes} bytes its header declares").format(
                where=where, nbytes=f"{nbytes:,}"))
    out = out.reshape(stored_shape, order="F" if fortran_order else "C")
    if finite and not np.isfinite(out).all():
        raise error(_("{where} contains NaN or inf; expected finite numbers").format(where=where))
    return out


def read_npz(path, max_bytes, max_unpacked, max_members=64, what=None, error=DataFileError):
    """Read an .npz archive of arrays, as np.load(path, allow_pickle=False) would, at a bounded cost.

    Refuses, with error naming the file: a non-regular or larger than max_bytes file, a zip
    directory larger than max_members entries need, and whatever npz_members and read_npy refuse.
    Returns {name: array}, names without ".npy". what: as for open_regular (default "an .npz file").
    """
    what = _("an .npz file") if what is None else what
    with open_regular(path, max_bytes, what, error) as f:
        try:
            _check_zip_directory(f, os.fstat(f.fileno()).st_size, path, max_members, error)
            with zipfile.ZipFile(f) as z:
                return {name: read_npy(z, info, path, error)
                        for name, info in npz_members(z, path, max_members, max_unpacked, error).items()}
        except error:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
                RuntimeError, struct.error, SyntaxError, tokenize.TokenError) as e:  # last two: numpy's header parser
            raise error(_("{path}: unreadable ({error}); expected {what}").format(
                path=path, error=e, what=what)) from None
