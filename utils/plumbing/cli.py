"""What the command lines share: run folders that never overwrite results, and errors without tracebacks.

The commands themselves are in utils/commands/ (python -m utils COMMAND).
"""
import argparse
import sys
import time
from pathlib import Path

from utils.plumbing import paths


def run_folder(name, out=None):
    """out if given, else a new folder log/runs/<name>-<YYYYmmdd-HHMMSS> (never an existing one)."""
    if out is not None:
        return Path(out)
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
