"""Writes that are atomic: a reader (or a crash) sees the old file or the new one, never half of one.

Apart from utils.plumbing.files (which re-exports atomic_write) so that the translation catalogs' reader
(utils.plumbing.po) can write atomically without importing the file readers, whose messages it translates.
"""
import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

STALE_SECONDS = 60  # a temporary file this old, whose writer is gone, is a killed write's


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside path; on success move it over path in one step.

    os.replace is atomic on POSIX and Windows, so a reader (or a crash) sees the old
    file or the new one, never half of one. On error the temporary file is removed; the
    ones a killed writer left behind are removed by the next write (remove_stale_temporaries).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
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


def remove_stale_temporaries(path, max_age=STALE_SECONDS):
    """Delete the temporary files of killed writes to path: ".<name>.<pid>.<random>.tmp" beside it.

    Safe with several writers: a file goes only when it has not been written to for max_age
    seconds AND its writer's process is gone (for names without a pid, from older versions,
    the age alone decides). A live writer keeps writing and renames its file within
    moments, so it never loses its file; a writer on another machine sharing the folder
    is protected by the age alone.
    """
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(?:(\d+)\.)?[^.]+\.tmp")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            match = pattern.fullmatch(entry.name)
            if not match or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if time.time() - entry.stat(follow_symlinks=False).st_mtime > max_age and not (
                        match[1] and _process_alive(int(match[1]))):
                    os.unlink(entry.path)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or a pid we cannot test: keep its file
    return True
