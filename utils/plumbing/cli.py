"""What the command lines share: run folders that never overwrite results, and errors without tracebacks.

The commands themselves are in utils/commands/ (python -m utils COMMAND).
"""
import argparse
import sys
import time
from pathlib import Path

from utils.plumbing import paths


def run_folder(name, out=None):
    """out if given, else a new folder log/runs/<name>-<YYYYmmdd-HHMMSS> (never an existing one).

    out is checked before any work starts: not empty (that would be the current folder), and
    neither it nor a folder above it an existing file.
    """
    if out is not None:
        if not str(out).strip():
            raise ValueError(f"--out {str(out)!r}: an empty folder name; expected the path of a folder, "
                             f"e.g. --out log/")
        out = Path(out)
        for folder in (out, *out.parents):
            if folder.exists() or folder.is_symlink():
                if not folder.is_dir():
                    raise NotADirectoryError(f"--out {out}: {folder} is a regular file, not a folder; "
                                             f"expected a folder (existing or new)")
                break
        return out
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = paths.log_dir() / "runs" / f"{name}-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = folder.with_name(f"{name}-{stamp}-{n}")
    return folder


def refuse_overwrite(path, flag="--overwrite"):
    """Raise FileExistsError naming path and the flag that allows replacing it."""
    if Path(path).exists():
        raise FileExistsError(f"{path} exists and would be replaced; pass {flag} to replace it, "
                              f"or choose another folder with --out")


def check_at_least(option, value, low=1):
    """value if it is an integer >= low, else a ValueError naming the option, e.g. check_at_least("--threads", 0)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{option} must be an integer >= {low}, got {value!r}")
    return value


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, except None: there the help text says what leaving it out means."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parser(prog, description, epilog=None):
    """An argument parser whose --help shows defaults; prog: how the command is typed, e.g. "python -m utils train"."""
    return argparse.ArgumentParser(prog=prog, description=description, epilog=epilog, formatter_class=_ShowDefaults)


def run(main, argv=None):
    """Call main(argv) and return its exit status (0 for None); print a ValueError or OSError as one line
    on stderr and exit 1, without a traceback."""
    try:
        return main(argv) or 0
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
