"""Grade students' exercise notebooks into one table: student, part, verdict, the named bug.

    python -m utils grade submissions/                    # every *.ipynb in the folder
    python -m utils grade alice.ipynb bob.ipynb --csv grades.csv
    python -m utils grade notebooks/06_exercises.ipynb --solutions   # every blank filled in (make solutions)

Each notebook runs in its own Jupyter kernel (utils/teaching/sandbox.py): a separate process
working in a new empty temporary folder, under a memory limit, each cell under a time limit.
The parts and their checks come from the handed-out notebook (--reference): an exercise
is a cell whose metadata key "exercise" names it (e.g. "linear"), and its checks are the
check_*(...) calls of the cells after it, up to the next exercise cell. A new exercise is graded
as soon as the handed-out notebook has it: nothing to register here.

The verdict comes from the checks themselves, never from printed text. The student's cells
run as they are; after the cells of each exercise (before the next exercise cell, or at the
end), the grader sends the kernel one cell of its own per check call (each under the time
limit): utils/teaching/verdict.py, imported afresh, evaluates the reference's call (e.g.
check_layer(Linear)) on the student's definitions with the check of utils/teaching/checks*.py,
also imported afresh, and returns its verdict (correct / wrong / not implemented / error)
through display() under its own MIME type and a nonce chosen for that cell. A cell that prints
"correct: ..." or replaces check_layer by print scores nothing. A part whose cells hit a limit
(time, memory) or raised in the exercise cell is an "error" saying so; after a kernel death,
the parts not yet graded say "not graded" and why. Cells are counted from 1, markdown included.

Threat model, honestly. This stops accidents and naive forgery: printing verdicts, redefining
or patching the checks, editing the check cells, writing or deleting files by relative paths
(they land in the temporary folder), an endless loop (interrupted, then killed), a memory hog
(MemoryError at the limit), a cell that kills its kernel (os._exit), output that floods the
terminal. It does not stop a determined student with code execution: a cell can patch NumPy
or the reference implementations the checks compare with, hook IPython to rewrite the grader's
call, read or delete the teacher's files by absolute path (or after os.chdir), read the
environment variables the grader passes on, use the network, or start processes that escape
the kernel's process group. Read the notebooks of surprising results; for hostile classes run
the grader in a container or as a user that can read nothing else.

Language: the messages of the report come in the reader's language (NN_LANG=zh: Chinese); the
printed table also shows the verdicts and its header so, while the CSV keeps English column names
and verdicts (correct, not implemented, wrong, error) for the programs that read it.

Exit status: 0 when every notebook was graded (whatever its verdicts); 1 when one could not be
(missing, not a regular file, not a notebook, or its kernel did not start: the table says why),
and, with --solutions, also unless every part is correct.
"""
import csv
import secrets
import sys
from collections import namedtuple
from pathlib import Path

from utils.plumbing import cli
from utils.plumbing.files import atomic_write
from utils.plumbing.language import _, width
from utils.teaching.exercise_notebook import (  # noqa: F401 (run, verdicts: for the tests of notebook 06)
    NotebookError,
    fill_solutions,
    part_of,
    read_notebook,
    read_solutions,
    reference_parts,
    run,
    solutions_path,
    verdicts,
)
from utils.teaching.sandbox import Sandbox, SandboxError
from utils.teaching.verdict import MIME, VERDICTS

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "(notebook)"  # the part of a row about the whole notebook

Row = namedtuple("Row", "student part verdict message")


# ---------------------------------------------------------------- grading one notebook

def grading_points(cells, parts):
    """{cell index: [parts graded just before that cell]}: each part after its exercise's cells, i.e. before
    the next exercise cell; a part whose exercise cell is missing at the end (index len(cells))."""
    marks = [(i, part_of(c)) for i, c in enumerate(cells)]
    marks = [(i, name) for i, name in marks if name is not None]
    points = {}
    for part in parts:
        last = max((i for i, name in marks if name == part), default=None)
        later = [i for i, name in marks if last is not None and i > last and name != part]
        points.setdefault(later[0] if later else len(cells), []).append(part)
    return points


def combine(results):
    """One (verdict, message) for a part from the [verdict, message] of each of its check calls."""
    worst = max((r[0] for r in results), key=VERDICTS.index)
    keep = [m for v, m in results if m and (v != "correct" or worst == "correct")]
    return worst, " | ".join(dict.fromkeys(keep))


class NotebookRun:
    """The run of one notebook in a sandbox: its cells, then each part's checks at its grading point."""

    def __init__(self, box, nb, parts, timeout):
        self.box, self.nb, self.parts, self.timeout = box, nb, parts, timeout
        self.verdicts = {}  # part -> (verdict, message)
        self.notes = {part: [] for part in [*parts, NOTEBOOK]}  # what went wrong in a part's cells
        self.dead = None  # why the kernel is gone: later parts are not graded

    def go(self):
        cells = self.nb.cells
        points = grading_points(cells, self.parts)
        owner = None
        for i, cell in enumerate(cells):
            for part in points.get(i, []):
                self.grade(part)
            name = part_of(cell)
            if name is not None:  # what goes wrong from here on is this part's, until the next part
                owner = name if name in self.parts else None
            if cell.cell_type == "code" and cell.source.strip() and self.dead is None:
                self.cell(i + 1, cell, owner if owner not in self.verdicts else None)
        for part in points.get(len(cells), []):
            self.grade(part)
        return self.verdicts, self.notes[NOTEBOOK]

    def cell(self, n, cell, owner):
        """Run cell number n; note what went wrong (for owner, the part whose cells these are)."""
        outcome = self.box.run(cell.source, self.timeout)
        note = None
        if outcome.status == "timeout":
            note = (_("cell {n} exceeded the time limit of {seconds:g} s") if self.box.alive else
                    _("cell {n} exceeded the time limit of {seconds:g} s and did not stop when interrupted; "
                      "the kernel was stopped")).format(n=n, seconds=self.timeout)
        elif outcome.status == "died":
            note = _("the kernel died in cell {n}").format(n=n)
        elif outcome.ename in ("MemoryError", "_ArrayMemoryError"):
            note = _("cell {n} ran out of memory (the limit is {mb} MB)").format(n=n, mb=self.box.memory_mb)
        elif outcome.status == "error" and "exercise" in cell.get("metadata", {}) and \
                outcome.ename != "NotImplementedError":  # a blank that runs at the top of its cell: still empty
            note = _("cell {n} raised {ename}: {evalue}").format(n=n, ename=outcome.ename, evalue=outcome.evalue)
        if note:
            self.notes[owner or NOTEBOOK].append(note)
        if not self.box.alive and self.dead is None:
            self.dead = note or _("the kernel died after cell {n}").format(n=n)

    def grade(self, part):
        """The verdict of part: each of its check calls run by the grader, one call per cell and time limit."""
        results = [self.check(call, part) if self.dead is None else
                   ["error", self.dead if self.dead in self.notes[part] else
                    _("not graded: {reason}").format(reason=self.dead)]
                   for call in self.parts[part]]
        verdict, message = combine(results)
        notes = self.notes[part]
        if notes and verdict != "correct":
            verdict, message = "error", _("; ").join(dict.fromkeys([*notes, message] if message else notes))
        elif notes:
            message += _(" (but {notes})").format(notes=_("; ").join(notes))
        self.verdicts[part] = (verdict, message)

    def check(self, call, part):
        """[verdict, message] of one check call, evaluated in the kernel by utils/teaching/verdict.py."""
        nonce = secrets.token_hex(16)  # chosen now: no cell that ran before can know it
        code = ("__import__('sys').modules.pop('utils.teaching.verdict', None); "
                "__import__('utils.teaching.verdict', fromlist=['report']).report("
                f"__import__('builtins').globals(), {[call]!r}, {nonce!r})")
        outcome = self.box.run(code, self.timeout)
        sent = [d for d in outcome.data if isinstance(d, dict) and d.get("nonce") == nonce]
        if outcome.status == "ok" and len(sent) == 1 and _well_formed(sent[0].get("results")):
            result = list(combine(sent[0]["results"]))
        elif outcome.status == "timeout":
            result = ["error", _("{call} exceeded the time limit of {seconds:g} s (a loop in the code it runs?)")
                      .format(call=call, seconds=self.timeout)]
        elif outcome.status == "died":
            result = ["error", _("the kernel died while {call} ran the student's code").format(call=call)]
        elif outcome.status == "error":
            result = ["error", _("the grader's check raised {ename}: {evalue}").format(ename=outcome.ename,
                                                                                       evalue=outcome.evalue)]
        else:
            result = ["error", _("the grader's check sent no verdict (display or sys.modules changed?)")]
        if not self.box.alive and self.dead is None:
            self.dead = _("the kernel died while checking {part}").format(part=part)
        return result


def _well_formed(results):
    return isinstance(results, list) and results and all(
        isinstance(r, list) and len(r) == 2 and r[0] in VERDICTS and isinstance(r[1], str) for r in results)


def grade_notebook(path, parts, student, timeout=120, memory_mb=4096, solutions=False):
    """(rows, graded): one row per part, or one row saying why the notebook could not be graded."""
    try:
        nb = read_notebook(path)
        if solutions:
            fill_solutions(nb, read_solutions(solutions_path(path)))
    except (NotebookError, ValueError, OSError) as e:
        return [Row(student, NOTEBOOK, "error", str(e))], False
    try:
        with Sandbox(memory_mb=memory_mb, mime=MIME) as box:
            verdicts, notes = NotebookRun(box, nb, parts, timeout).go()
    except SandboxError as e:
        return [Row(student, NOTEBOOK, "error", str(e))], False
    except Exception as e:  # the kernel's client failed in a way not foreseen: the other notebooks still get graded
        return [Row(student, NOTEBOOK, "error", _("grading stopped: {ename}: {evalue}").format(
            ename=type(e).__name__, evalue=e))], False
    rows = [Row(student, NOTEBOOK, "error", note) for note in notes]
    return rows + [Row(student, part, *verdicts[part]) for part in parts], True


# ---------------------------------------------------------------- the table

def notebooks_in(paths):
    """[(path, None)] for each notebook named or found in a named folder (*.ipynb, sorted), and
    [(path, reason)] for a folder without any; a path that is neither is kept for its row to say why."""
    found = []
    for path in map(Path, paths):
        if path.is_dir() and path.suffix != ".ipynb":
            inside = sorted(p for p in path.glob("*.ipynb") if not p.name.startswith("."))
            found += [(p, None) for p in inside] or [
                (path, _("{path}: no notebooks (*.ipynb) in this folder").format(path=path))]
        else:
            found.append((path, None))
    return found


def student_names(paths):
    """The file stem of each notebook, or its path where two notebooks share a stem."""
    stems = [Path(p).stem for p in paths]
    return [stem if stems.count(stem) == 1 else str(p) for stem, p in zip(stems, paths)]


def clean(text, limit=2000):
    """One line of printable text: a student's message may hold newlines or terminal escapes."""
    text = "".join(c if c.isprintable() else " " for c in str(text))
    return " ".join(text.split())[:limit]


def verdict_name(verdict):
    """A verdict (correct, not implemented, wrong, error) in the reader's language, for the printed table."""
    return {"correct": _("correct"), "not implemented": _("not implemented"), "wrong": _("wrong"),
            "error": _("error")}.get(verdict, verdict)


def format_table(rows):
    """The table as the terminal shows it: the header, the verdicts and "(notebook)" in the reader's language."""
    rows = [Row(*map(clean, (r.student, _("(notebook)") if r.part == NOTEBOOK else r.part, verdict_name(r.verdict),
                             r.message))) for r in rows]
    header = Row(_("student"), _("part"), _("verdict"), _("message"))
    widths = [max(width(getattr(r, f)) for r in [header, *rows]) for f in Row._fields[:3]]
    pad = lambda text, w: text + " " * (w - width(text))  # noqa: E731
    return "\n".join("  ".join([*(pad(getattr(r, f), w) for f, w in zip(Row._fields, widths)), r.message]).rstrip()
                     for r in [header, *rows])


def write_csv(rows, path):
    """The table as CSV, written atomically; a cell that a spreadsheet would run as a formula gets a quote."""
    safe = lambda s: "'" + s if s[:1] in ("=", "+", "-", "@") else s
    with atomic_write(path, "w") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(Row._fields)
        out.writerows([safe(clean(v)) for v in row] for row in rows)


def summary(rows, graded):
    counts = {v: sum(r.verdict == v for r in rows if r.part != NOTEBOOK) for v in VERDICTS}
    said = _(", ").join(_("{n} {verdict}").format(n=n, verdict=verdict_name(v)) for v, n in counts.items() if n)
    return _("{graded} of {total} notebooks graded; parts: {verdicts}").format(
        graded=sum(graded), total=len(graded), verdicts=said or _("none"))


# ---------------------------------------------------------------- the command

def _main(argv=None):
    # description and epilog: the first and last paragraphs of the docstring (tests/plumbing/test_cli_chinese.py)
    parser = cli.parser("python -m utils grade",
                        _("Grade students' exercise notebooks into one table: student, part, verdict, the named bug."),
                        epilog=_("Exit status: 0 when every notebook was graded (whatever its verdicts); 1 when one "
                                 "could not be (missing, not a regular file, not a notebook, or its kernel did not "
                                 "start: the table says why), and, with --solutions, also unless every part is "
                                 "correct."))
    parser.add_argument("paths", nargs="*", metavar="PATH", default=[str(ROOT / "notebooks" / "06_exercises.ipynb")],
                        help=_("notebooks, or folders of notebooks (each *.ipynb in them)"))
    parser.add_argument("--csv", metavar="OUT.csv", help=_("also write the table to this CSV file"))
    parser.add_argument("--timeout-cell", type=float, default=120, metavar="S",
                        help=_("seconds each cell (and each part's checks) may run before it is interrupted"))
    parser.add_argument("--memory-mb", type=int, default=4096, metavar="M",
                        help=_("the kernel's memory limit (address space) in MB; NumPy alone takes about 1000"))
    parser.add_argument("--reference", metavar="NOTEBOOK", default=str(ROOT / "notebooks" / "06_exercises.ipynb"),
                        help=_("the handed-out notebook: its exercise cells name the parts, its check calls grade "
                               "them"))
    parser.add_argument("--solutions", action="store_true",
                        help=_("fill every blank from solutions/<name>.py beside each notebook first (make "
                               "solutions)"))
    args = parser.parse_args(argv)
    if not args.timeout_cell > 0:
        raise ValueError(_("--timeout-cell must be a number of seconds > 0, got {seconds:g}").format(
            seconds=args.timeout_cell))
    cli.check_at_least("--memory-mb", args.memory_mb, 256)
    if args.csv is not None and Path(args.csv).is_dir():
        raise ValueError(_("--csv {path}: a folder; expected the name of a CSV file to write").format(path=args.csv))
    try:
        parts = reference_parts(read_notebook(args.reference))
    except NotebookError as e:
        raise ValueError(f"--reference: {e}") from None
    except ValueError as e:
        raise ValueError(f"--reference {args.reference}: {e}") from None
    if not parts:
        raise ValueError(_("--reference {path}: no exercise cell (metadata \"exercise\") followed by check_*(...) "
                           "calls; expected the handed-out exercises notebook").format(path=args.reference))
    found = notebooks_in(args.paths)
    names = student_names([p for p, _ in found])
    rows, graded = [], []
    for k, ((path, reason), name) in enumerate(zip(found, names), 1):
        print(_("grading {path} ({k} of {n})").format(path=path, k=k, n=len(found)), file=sys.stderr, flush=True)
        if reason:
            more, ok = [Row(name, NOTEBOOK, "error", reason)], False
        else:
            more, ok = grade_notebook(path, parts, name, args.timeout_cell, args.memory_mb, args.solutions)
        rows += more
        graded.append(ok)
    print(format_table(rows))
    print(summary(rows, graded))
    if args.csv is not None:
        write_csv(rows, args.csv)
        print(_("wrote {path}").format(path=args.csv))
    everything_right = all(r.verdict == "correct" for r in rows)
    return 0 if all(graded) and (everything_right or not args.solutions) else 1


def main(argv=None):
    return cli.run(_main, argv)
