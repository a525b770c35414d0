"""make test: the unit tests and the notebooks, in two pytest processes side by side.

The notebooks run in order in one process (each reads files the one before it writes: 03 the
checkpoint 04 tests), so they cannot be spread over pytest-xdist workers cell by cell; the unit
tests run beside them in a second process. Each process works on its own temporary copies of
log/ and static/ (conftest.py). The unit tests' output streams live; the notebooks' follows
when both are done, then one closing line with the counts of both. Arguments are passed to
both pytest runs (e.g. -x, or --durations=20).

    python tests/run_all.py            # what make test runs
"""
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def counts(text):
    """{"passed": 818, "failed": 0, ...} from the last line of a pytest summary."""
    last = next((line for line in reversed(text.splitlines()) if COUNTS.search(line)), "")
    return {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in COUNTS.findall(last)}


def main(args):
    start = time.time()
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    with tempfile.TemporaryFile("w+") as notebooks_log:
        notebooks = subprocess.Popen([*pytest, "--nbval", "notebooks"], cwd=ROOT, stdout=notebooks_log,
                                     stderr=subprocess.STDOUT, text=True)
        units = subprocess.Popen([*pytest, "tests"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        lines = []
        for line in units.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        units.wait()
        notebooks.wait()
        notebooks_log.seek(0)
        notebooks_text = notebooks_log.read()
    print(notebooks_text, end="", flush=True)
    total = {}
    for part in (counts("".join(lines)), counts(notebooks_text)):
        for kind, n in part.items():
            total[kind] = total.get(kind, 0) + n
    failed = total.get("failed", 0) + total.get("error", 0)
    ok = units.returncode == 0 and notebooks.returncode == 0
    extra = "".join(f", {total[k]} {k}" for k in ("skipped", "deselected") if total.get(k))
    print(f"unit tests exit {units.returncode}, notebooks exit {notebooks.returncode}, "
          f"{time.time() - start:.0f} s in all")
    print(f"{total.get('passed', 0)} passed, {failed} failed{extra}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
