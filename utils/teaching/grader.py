"""Run an exercises notebook as handed out, or with the solutions filled in, and read the verdicts.

    python -m utils grade notebooks/06_exercises.ipynb               # a student's notebook as it is
    python -m utils grade notebooks/06_exercises.ipynb --solutions   # every blank filled in (make solutions)

An exercise cell carries the metadata key "exercise" (e.g. "linear"); the solutions file,
notebooks/solutions/<notebook name>.py, holds one section per exercise, opened by the line
"# %% exercise: <name>". With --solutions each exercise cell's source is replaced by its
section in a copy held in memory, which is executed; the notebook file is never written.
Exit status 1 unless every check says "correct" (with --solutions) or nothing failed.
"""
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from utils.plumbing import cli

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^# %% exercise: (\S+)\s*$", re.MULTILINE)


def solutions_path(notebook):
    return Path(notebook).parent / "solutions" / (Path(notebook).stem + ".py")


def read_solutions(path):
    """{exercise name: cell source} from a solutions file."""
    text = Path(path).read_text()
    parts = MARKER.split(text)  # [preamble, name, source, name, source, ...]
    return {name: source.strip() + "\n" for name, source in zip(parts[1::2], parts[2::2])}


def fill_solutions(nb, solutions):
    """Replace each exercise cell's source by its solution, in place; raise if one is missing."""
    names = [cell.metadata["exercise"] for cell in nb.cells if "exercise" in cell.metadata]
    missing = [name for name in names if name not in solutions]
    if missing:
        raise ValueError(f"no solution for the exercise cells {missing}; the solutions file has {sorted(solutions)}")
    for cell in nb.cells:
        if "exercise" in cell.metadata:
            cell.source = solutions[cell.metadata["exercise"]]
    return nb


def verdicts(nb):
    """[(cell index, line)] for every line a check printed, and every error a cell raised."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append((i, f"error: {out.ename}: {out.evalue}"))
            for line in out.get("text", "").splitlines():
                if line.startswith(("correct:", "not implemented yet:")):
                    found.append((i, line))
    return found


def run(notebook, solutions=False, timeout=600):
    """Execute a copy of notebook (with solutions filled in if asked); return (executed nb, verdicts)."""
    nb = nbformat.read(notebook, as_version=4)
    if solutions:
        fill_solutions(nb, read_solutions(solutions_path(notebook)))
    # allow_errors: a wrong answer's AssertionError is a verdict to report, not a crash.
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(Path(notebook).resolve().parent)}}).execute()
    return nb, verdicts(nb)


def main(argv=None):
    parser = cli.parser("python -m utils grade", __doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", default=str(ROOT / "notebooks" / "06_exercises.ipynb"))
    parser.add_argument("--solutions", action="store_true", help="fill every blank from the solutions file")
    args = parser.parse_args(argv)
    checks = sum(len(re.findall(r"^check_\w+\(", cell.source, re.MULTILINE))
                 for cell in nbformat.read(args.notebook, as_version=4).cells if cell.cell_type == "code")
    _, found = run(args.notebook, args.solutions)
    for i, line in found:
        print(f"cell {i}: {line}")
    correct = sum(line.startswith("correct:") for _, line in found)
    errors = sum(line.startswith("error:") for _, line in found)
    print(f"{correct} of {checks} checks correct, {errors} cells raised an error")
    ok = errors == 0 and (correct == checks if args.solutions else True)
    return 0 if ok else 1

