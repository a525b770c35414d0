"""The exercises notebook as files: read one safely, find its parts and their checks, fill in the solutions.

An exercise cell carries the metadata key "exercise" (e.g. "linear"); its checks are the
check_*(...) calls of the cells after it, up to the next exercise cell. A cell with the key "part"
instead opens a part whose code is given (e.g. "end_to_end": checks of the student's parts working
together); it needs no solution. The solutions file,
notebooks/solutions/<notebook name>.py, holds one section per exercise, opened by the line
"# %% exercise: <name>"; fill_solutions puts them in a notebook held in memory (the file is
never written). The grader (utils/teaching/grader.py) uses all of these.
"""
import ast
import re
import warnings
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbclient import NotebookClient

from utils.plumbing.files import read_regular
from utils.plumbing.language import _
from utils.teaching.checks_common import after_prefix

MARKER = re.compile(r"^# %% exercise: (\S+)\s*$", re.MULTILINE)
MAX_NOTEBOOK_BYTES = 50 * 2 ** 20  # a notebook with many figures is a few MB


class NotebookError(ValueError):
    """A file that cannot be graded as a notebook; the message says why."""


# ---------------------------------------------------------------- reading notebooks

def read_notebook(path):
    """The notebook at path (nbformat 4), or NotebookError saying what is wrong with the file.

    Refused without being opened: a missing path, a directory, a FIFO, a device (a FIFO would
    block a plain open), a file over MAX_NOTEBOOK_BYTES. Refused after reading: an empty file,
    text that is not UTF-8 JSON, JSON that is not a notebook.
    """
    try:
        data = read_regular(path, MAX_NOTEBOOK_BYTES, _("a Jupyter notebook (.ipynb)"), error=NotebookError)
    except FileNotFoundError as e:
        raise NotebookError(str(e)) from None
    except PermissionError:
        raise NotebookError(_("{path}: not readable (permission denied)").format(path=path)) from None
    if not data.strip():
        raise NotebookError(_("{path}: an empty file; expected a Jupyter notebook (JSON)").format(path=path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotebookError(_("{path}: not UTF-8 text (byte {byte}); expected a Jupyter notebook (JSON)").format(
            path=path, byte=e.start)) from None
    try:
        with warnings.catch_warnings():  # nbformat warns about missing cell ids, which it adds
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
    except nbformat.reader.NotJSONError:
        raise NotebookError(_("{path}: not valid JSON (truncated, or not a notebook); expected a Jupyter "
                              "notebook").format(path=path)) from None
    except Exception as e:  # nbformat raises many types for JSON that is not a notebook: {}, [], ...
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise NotebookError(_("{path}: JSON but not a Jupyter notebook ({reason})").format(
            path=path, reason=first)) from None
    if not all(isinstance(c.get("source"), str) for c in nb.cells if c.get("cell_type") == "code"):
        raise NotebookError(_("{path}: a code cell without source text; expected a Jupyter notebook").format(
            path=path))
    return nb


def check_calls(source, where):
    """The check_*(...) calls of one cell's source, as text, in order.

    A call counts where it is a statement of the cell (or of a `with` block in it, or the value of
    an assignment): the grader evaluates each call on its own, so a call inside a loop, a branch or
    a function (whose arguments could mean anything there) is refused with ValueError.
    """
    source = TransformerManager().transform_cell(source)  # %magics -> Python
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ValueError(_("{where}: the cell does not parse ({error}, line {line})").format(
            where=where, error=e.msg, line=e.lineno)) from None
    is_check = lambda node: (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                             and node.func.id.startswith("check_"))
    calls = []

    def visit(statements):
        for s in statements:
            if isinstance(s, (ast.Expr, ast.Assign)) and is_check(s.value):
                calls.append(ast.get_source_segment(source, s.value))
            elif isinstance(s, ast.With):
                visit(s.body)
            elif any(is_check(n) for n in ast.walk(s)):
                name = next(n.func.id for n in ast.walk(s) if is_check(n))
                inside = {"For": _("a for loop"), "While": _("a while loop"), "If": _("an if"),
                          "Try": _("a try block"), "FunctionDef": _("a function"), "ClassDef": _("a class")
                          }.get(type(s).__name__, _("an expression"))
                raise ValueError(_("{where}: {name} is called inside {inside} (line {line}); the grader evaluates "
                                   "check calls written as statements of their own, one per line").format(
                    where=where, name=name, inside=inside, line=s.lineno))
    visit(tree.body)
    return calls


def part_of(cell):
    """The name of the part a cell opens (its metadata "exercise" or "part"), else None."""
    meta = cell.get("metadata", {})
    name = meta.get("exercise", meta.get("part"))
    return name if isinstance(name, str) else None


def reference_parts(nb):
    """{exercise name: [check call source]} of the handed-out notebook, in order; parts without a check left out."""
    parts, current = {}, None
    for i, cell in enumerate(nb.cells, 1):
        name = part_of(cell)
        if name is not None:
            if name in parts:
                raise ValueError(_("cell {n}: a second exercise cell named {name}").format(n=i, name=repr(name)))
            current, parts[name] = name, []
        elif cell.cell_type == "code" and current is not None:
            parts[current] += check_calls(cell.source, _("cell {n}").format(n=i))
    return {name: calls for name, calls in parts.items() if calls}


def solutions_path(notebook):
    """notebooks/solutions/06_exercises.py for notebooks/06_exercises.ipynb, and for its Chinese twin
    notebooks/zh/06_exercises.ipynb (same code cells, same answers)."""
    folder = Path(notebook).parent
    beside = folder / "solutions" / (Path(notebook).stem + ".py")
    if not beside.exists() and folder.name == "zh":
        return folder.parent / "solutions" / beside.name
    return beside


def _no_such_file(e):
    """FileNotFoundError e, its message (Python's "[Errno 2] No such file or directory: 'path'") in the reader's
    language; the English is Python's own, unchanged."""
    if e.filename is None or str(e) != f"[Errno 2] No such file or directory: {e.filename!r}":
        return e  # not the usual message: left as Python wrote it
    return FileNotFoundError(_("[Errno 2] No such file or directory: {path}").format(path=repr(e.filename)))


def read_solutions(path):
    """{exercise name: cell source} from a solutions file."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError as e:
        raise _no_such_file(e) from None
    parts = MARKER.split(text)  # [preamble, name, source, name, source, ...]
    return {name: source.strip() + "\n" for name, source in zip(parts[1::2], parts[2::2])}


def fill_solutions(nb, solutions):
    """Replace each exercise cell's source by its solution, in place; raise if one is missing."""
    names = [cell.metadata["exercise"] for cell in nb.cells if "exercise" in cell.metadata]
    missing = [name for name in names if name not in solutions]
    if missing:
        raise ValueError(_("no solution for the exercise cells {missing}; the solutions file has {names}").format(
            missing=missing, names=sorted(solutions)))
    for cell in nb.cells:
        if "exercise" in cell.metadata:
            cell.source = solutions[cell.metadata["exercise"]]
    return nb


def verdicts(nb):
    """[(cell index, line)] for every line a check printed, and every error a cell raised, in an executed notebook.

    A check's line is found in English or in a language of the course ("正确：..." in notebooks/zh/).

    For the tests of the handed-out notebook's own outputs (what the student sees), not for grading.
    """
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append((i, f"error: {out.ename}: {out.evalue}"))
            for line in out.get("text", "").splitlines():
                if any(after_prefix(line, prefix) is not None for prefix in ("correct:", "not implemented yet:")):
                    found.append((i, line))
    return found


def run(notebook, solutions=False, timeout=600):
    """Execute a copy of the project's own notebook (solutions filled in if asked), outputs kept: (nb, verdicts).

    Trusted input only (tests/teaching/test_exercises.py): it runs in the notebook's folder, without limits.
    """
    try:
        nb = nbformat.read(notebook, as_version=4)
    except FileNotFoundError as e:
        raise _no_such_file(e) from None
    if solutions:
        fill_solutions(nb, read_solutions(solutions_path(notebook)))
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(Path(notebook).resolve().parent)}}).execute()
    return nb, verdicts(nb)
