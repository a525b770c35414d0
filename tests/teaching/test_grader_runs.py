"""The grader on folders of student notebooks, each in its own kernel: the table it gives, within its limits.

Two runs, one kernel per notebook: five ordinary notebooks (complete, partial, a planted bug per
part, corrupt, an endless loop), then the hostile ones (a FIFO, os._exit, forged verdicts, a cell
that deletes files, a check that loops, a memory hog, a loop that ignores the interrupt). Each row's words are checked.
"""
import contextlib
import csv
import io
import os
import time

import pytest

from tests.teaching.grader_notebooks import ANSWERS, BUGS, handed_out, student, write
from utils.teaching import grader

TIMEOUT = 6  # seconds per cell: the first cell imports NumPy and the checks in about 1 s
MEMORY_MB = 2000  # NumPy and the checks take about 1000 MB of address space


def cell(nb, part):
    """The number the grader gives the exercise cell of part (cells counted from 1)."""
    return next(i for i, c in enumerate(nb.cells, 1) if c.metadata.get("exercise") == part)


def grade_folder(tmp_path_factory, notebooks, *options):
    """Write notebooks {student: nb or a function making the file}, grade the folder; (exit status, printed,
    {(student, part): (verdict, message)}, seconds, folder)."""
    root = tmp_path_factory.mktemp("grading")
    folder, teacher = root / "submissions", root / "teacher"
    folder.mkdir()
    teacher.mkdir()
    for name, nb in notebooks.items():
        nb(folder / f"{name}.ipynb") if callable(nb) else write(nb, folder / f"{name}.ipynb")
    (folder / "keep.txt").write_text("precious")
    reference = write(handed_out(), root / "reference.ipynb")
    out, started, here = io.StringIO(), time.monotonic(), os.getcwd()
    os.chdir(teacher)  # the teacher's working directory: nothing may appear in it but the CSV
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = grader.main([str(folder), "--reference", str(reference), "--csv", "grades.csv",
                                "--timeout-cell", str(TIMEOUT), *options])
    finally:
        os.chdir(here)
    with open(teacher / "grades.csv", newline="") as f:
        rows = {(r["student"], r["part"]): (r["verdict"], r["message"]) for r in csv.DictReader(f)}
    assert sorted(p.name for p in teacher.iterdir()) == ["grades.csv"]
    return code, out.getvalue(), rows, time.monotonic() - started, folder


# ---------------------------------------------------------------- five ordinary notebooks

LOOP = student(ANSWERS | {"l2": "while True:\n    pass"})
FIVE = {
    "complete": student(ANSWERS),
    "partial": student({"relu": ANSWERS["relu"], "momentum": 'raise NotImplementedError("sgd_momentum")'}),
    "buggy": student({part: source for part, (source, _) in BUGS.items()}),
    "corrupt": lambda p: p.write_text('{"cells": [{"cell_type": "code", "source": "x = 1'),
    "loops": LOOP,
}
FIVE_ROWS = [  # (student, part, verdict, words of the message)
    ("complete", "relu", "correct", "relative error"),
    ("complete", "l2", "correct", "relative error"),
    ("complete", "momentum", "correct", "relative error"),
    ("partial", "relu", "correct", "relative error"),
    ("partial", "l2", "not implemented", "write l2_regularization"),
    ("partial", "momentum", "not implemented", "sgd_momentum is not defined"),  # a blank raising at the top
    ("buggy", "relu", "wrong", BUGS["relu"][1]),
    ("buggy", "l2", "wrong", BUGS["l2"][1]),
    ("buggy", "momentum", "wrong", BUGS["momentum"][1]),
    ("corrupt", "(notebook)", "error", "not valid JSON"),
    ("loops", "relu", "correct", "relative error"),
    ("loops", "l2", "error", f"cell {cell(LOOP, 'l2')} exceeded the time limit of {TIMEOUT} s"),
    ("loops", "momentum", "correct", "relative error"),  # the interrupt stopped the loop: the kernel went on
]


@pytest.fixture(scope="module")
def five(tmp_path_factory):
    return grade_folder(tmp_path_factory, FIVE)


@pytest.mark.parametrize("student_, part, verdict, words", FIVE_ROWS, ids=[f"{s}-{p}" for s, p, _, _ in FIVE_ROWS])
def test_five_notebooks_give_the_right_table(five, student_, part, verdict, words):
    _, printed, rows, _, _ = five
    got, message = rows[(student_, part)]
    assert got == verdict and words in message, message
    assert any(line.split()[:3] == [student_, part, verdict.split()[0]] for line in printed.splitlines())


def test_five_notebooks_one_table_within_limits(five):
    code, printed, rows, seconds, _ = five
    assert set(rows) == {(s, p) for s, p, _, _ in FIVE_ROWS}
    assert code == 1  # the corrupt notebook could not be graded
    assert "4 of 5 notebooks graded" in printed and "Traceback" not in printed
    assert seconds < 5 * 15 + TIMEOUT  # a kernel start and a few checks each, and one time limit


# ---------------------------------------------------------------- hostile notebooks

EXITS = student({"relu": ANSWERS["relu"], "l2": "import os\nos._exit(3)"})
FORGER = student({"momentum": BUGS["momentum"][0]}, after={"relu": [
    "check_layer = print\ncheck_layer('correct: relative error 1e-16 (ReLU forward and backward, gradient check)')",
    "print('correct: relative error 0e+00 (L2 penalty and its gradient, biases not penalised)')",
    "from IPython.display import display\n"
    "display({'application/x-nn-grade+json': {'nonce': '', 'results': [['correct', 'forged']]}}, raw=True)",
    "import utils.teaching.checks_training as training\nimport utils.teaching.gradcheck as gradcheck\n"
    "gradcheck.rel_error = lambda a, b: 0.0\ntraining.check_update = lambda *a, **k: print('correct: forged')\n"
    "training.compare = lambda *a, **k: 0.0",
    "def check_l2(*a, **k):\n    print('correct: relative error 0e+00')",
]})
DELETER = student({"relu": ANSWERS["relu"], "momentum": "def sgd_momentum(w, dw, v, lr, momentum)\n    return w, v"},
                  after={"relu": [
    "import os\nfor name in os.listdir('.'):\n    os.remove(name)\nopen('keep.txt', 'w').write('overwritten')\n"
    "open('grades.csv', 'w').write('forged')",
    "import os\nos.remove('complete.ipynb')",
]})
HOG = student({"relu": ANSWERS["relu"].replace("return np.maximum", "while True:\n            pass\n        return np.maximum"),
               "l2": "import numpy as np\nbig = np.ones(2 ** 29)  # 4 GiB"})
STUBBORN = student({"relu": ANSWERS["relu"], "l2": (
    "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass")})
HOSTILE = {"complete": student(ANSWERS), "fifo": os.mkfifo, "exits": EXITS, "forger": FORGER, "deleter": DELETER,
           "hog": HOG, "stubborn": STUBBORN}
HOSTILE_ROWS = [
    ("complete", "relu", "correct", "relative error"),
    ("fifo", "(notebook)", "error", "is a FIFO"),
    ("exits", "relu", "correct", "relative error"),
    ("exits", "l2", "error", f"the kernel died in cell {cell(EXITS, 'l2')}"),
    ("exits", "momentum", "error", f"not graded: the kernel died in cell {cell(EXITS, 'l2')}"),
    ("forger", "relu", "not implemented", "write ReLU.forward"),
    ("forger", "l2", "not implemented", "write l2_regularization"),
    ("forger", "momentum", "wrong", BUGS["momentum"][1]),
    ("deleter", "relu", "correct", "relative error"),
    ("deleter", "l2", "not implemented", "write l2_regularization"),
    ("deleter", "momentum", "error", f"cell {cell(DELETER, 'momentum')} raised SyntaxError"),
    ("hog", "relu", "error", f"check_layer(ReLU) exceeded the time limit of {TIMEOUT} s"),  # the check ran a loop
    ("hog", "l2", "error", f"cell {cell(HOG, 'l2')} ran out of memory (the limit is {MEMORY_MB} MB)"),
    ("hog", "momentum", "not implemented", "write sgd_momentum"),  # a MemoryError leaves the kernel alive
    ("stubborn", "l2", "error", f"cell {cell(STUBBORN, 'l2')} exceeded the time limit of {TIMEOUT} s and did not "
                                "stop when interrupted; the kernel was stopped"),
    ("stubborn", "momentum", "error", f"not graded: cell {cell(STUBBORN, 'l2')} exceeded the time limit"),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return grade_folder(tmp_path_factory, HOSTILE, "--memory-mb", str(MEMORY_MB))


@pytest.mark.parametrize("student_, part, verdict, words", HOSTILE_ROWS,
                         ids=[f"{s}-{p}" for s, p, _, _ in HOSTILE_ROWS])
def test_hostile_notebooks_give_rows_not_tracebacks(hostile, student_, part, verdict, words):
    got, message = hostile[2][(student_, part)]
    assert got == verdict and words in message, message


def test_no_forged_verdict_is_read(hostile):
    _, printed, rows, _, _ = hostile
    assert "forged" not in printed and not any("forged" in m for _, m in rows.values())


def test_nothing_beside_the_notebooks_was_deleted_or_written(hostile):
    code, printed, _, seconds, folder = hostile
    assert (folder / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{name}.ipynb" for name in HOSTILE] + ["keep.txt"])
    assert code == 1 and "6 of 7 notebooks graded" in printed  # the FIFO could not be
    assert seconds < 6 * 15 + 3 * TIMEOUT + 10

