"""The grader without a kernel: what it refuses to read, the parts it finds, how it combines and writes verdicts,
and the verdicts themselves (utils/teaching/verdict.py run in this process)."""
import contextlib
import csv
import io
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import module
from tests.teaching.grader_notebooks import ANSWERS, BLANKS, BUGS, handed_out, student, write
from utils.teaching import exercise_notebook, grader, verdict
from utils.teaching.exercise_notebook import NotebookError, check_calls, read_notebook, reference_parts

ROOT = Path(__file__).resolve().parents[2]


def grade(argv):
    """(exit status, printed table, rows of the CSV) of python -m utils grade argv, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = grader.main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue() + err.getvalue()


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- what cannot be graded: one row each, no kernel

def _fifo(p):
    os.mkfifo(p)


def _truncated(p):
    text = json.dumps(student(ANSWERS))
    p.write_text(text[:len(text) // 2])


UNREADABLE = [  # (file name, how to make it, words of its row)
    ("empty", lambda p: p.write_bytes(b""), "an empty file"),
    ("blank", lambda p: p.write_bytes(b"  \n "), "an empty file"),
    ("random", lambda p: p.write_bytes(np.random.default_rng(0).bytes(512)), "not UTF-8 text"),
    ("object", lambda p: p.write_text("{}"), "JSON but not a Jupyter notebook"),
    ("list", lambda p: p.write_text("[]"), "JSON but not a Jupyter notebook"),
    ("cells-not-a-list", lambda p: p.write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": 5}'),
     "JSON but not a Jupyter notebook"),
    ("truncated", _truncated, "not valid JSON (truncated"),
    ("text", lambda p: p.write_text("print('hello')\n"), "not valid JSON"),
    ("directory", lambda p: p.mkdir(), "is a directory; expected a Jupyter notebook"),
    ("fifo", _fifo, "is a FIFO; expected a Jupyter notebook"),
]


@pytest.fixture
def no_kernel(monkeypatch):
    monkeypatch.setattr(grader, "Sandbox", lambda *a, **k: pytest.fail("a kernel was started"))


def test_a_folder_of_unreadable_notebooks_is_one_row_each_and_exit_status_1(tmp_path, no_kernel):
    folder = tmp_path / "submissions"
    folder.mkdir()
    for name, make, _ in UNREADABLE:
        make(folder / f"{name}.ipynb")
    (folder / "notes.txt").write_text("not a notebook: not graded")
    reference = write(handed_out(), tmp_path / "reference.ipynb")
    started = time.monotonic()
    code, printed = grade([str(folder), str(tmp_path / "missing.ipynb"), "--reference", str(reference),
                           "--csv", str(tmp_path / "grades.csv")])
    assert time.monotonic() - started < 10  # the FIFO was never opened: nothing blocked
    assert code == 1 and "Traceback" not in printed
    rows = {r["student"]: r for r in read_csv(tmp_path / "grades.csv")}
    expected = {name: words for name, _, words in UNREADABLE} | {"missing": "no such file"}
    assert set(rows) == set(expected)
    for name, words in expected.items():
        assert (rows[name]["part"], rows[name]["verdict"]) == ("(notebook)", "error"), rows[name]
        assert words in rows[name]["message"], (name, rows[name]["message"])
        assert f"{name}" in printed
    assert "0 of 11 notebooks graded" in printed


def test_a_notebook_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    path = write(student(ANSWERS), tmp_path / "big.ipynb")
    monkeypatch.setattr(exercise_notebook, "MAX_NOTEBOOK_BYTES", 100)
    with pytest.raises(NotebookError, match="more than the 100 bytes"):
        read_notebook(path)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.ipynb")
    errors = []
    reader = threading.Thread(target=lambda: errors.append(pytest.raises(NotebookError, read_notebook,
                                                                         tmp_path / "pipe.ipynb")), daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive() and "is a FIFO" in str(errors[0].value)


def test_an_empty_folder_is_a_row_and_bad_options_are_one_line_errors(tmp_path, no_kernel):
    (tmp_path / "empty").mkdir()
    reference = write(handed_out(), tmp_path / "reference.ipynb")
    looped = handed_out()
    looped.cells[3].source = "for layer in (ReLU,):\n    check_layer(layer)"
    write(looped, tmp_path / "looped.ipynb")
    code, printed = grade([str(tmp_path / "empty"), "--reference", str(reference)])
    assert code == 1 and "no notebooks (*.ipynb) in this folder" in printed
    for options, words in [(["--timeout-cell", "0"], "--timeout-cell must be a number of seconds > 0"),
                           (["--memory-mb", "100"], "--memory-mb must be an integer >= 256, got 100"),
                           (["--csv", str(tmp_path)], "a folder; expected the name of a CSV file"),
                           (["--reference", str(tmp_path / "none.ipynb")], "--reference: "),
                           (["--reference", str(tmp_path / "looped.ipynb")],
                            "looped.ipynb: cell 4: check_layer is called inside a for loop (line 1)"),
                           ([], "")]:
        argv = [str(tmp_path / "empty"), *(["--reference", str(reference)] if "--reference" not in options else []),
                *options]
        code, printed = grade(argv)
        assert code == 1 and words in printed and "Traceback" not in printed, printed


def test_help_says_what_the_exit_status_means():
    code, printed = grade(["--help"])
    said = " ".join(printed.split())
    assert code == 0 and "Exit status: 0 when every notebook was graded" in said and "--memory-mb" in said


# ---------------------------------------------------------------- the parts, from the handed-out notebook

def test_the_parts_and_their_checks_come_from_the_handed_out_notebook():
    assert reference_parts(handed_out()) == {"relu": ["check_layer(ReLU)"], "l2": ["check_l2(l2_regularization)"],
                                             "momentum": ["check_update(sgd_momentum)"]}
    real = reference_parts(read_notebook(ROOT / "notebooks" / "06_exercises.ipynb"))
    assert real["linear"] == ["check_layer(Linear)"]
    assert [call.split("(")[0] for call in real["end_to_end"]] == ["check_trained"] * 2  # a part of its own
    assert "check_trained" not in " ".join(real["grid_search"])
    given = {"end_to_end"}  # a "part" cell: given code, no solution
    assert set(real) - given <= set(grader.read_solutions(ROOT / "notebooks" / "solutions" / "06_exercises.py"))


@pytest.mark.parametrize("source, calls", [
    ("check_a(x)\ncheck_b(y, kind='z')", ["check_a(x)", "check_b(y, kind='z')"]),
    ("with skip_if_unwritten():\n    check_a(x)", ["check_a(x)"]),
    ("result = check_a(x)", ["check_a(x)"]),
    ("%matplotlib inline\ncheck_a(x)", ["check_a(x)"]),
    ("print(1)\nx = run(2)", []),
])
def test_check_calls_are_the_statements_of_a_cell(source, calls):
    assert check_calls(source, "cell 1") == calls


@pytest.mark.parametrize("source, words", [
    ("for L in (A, B):\n    check_layer(L)", "check_layer is called inside a for loop (line 1)"),
    ("if ok:\n    check_layer(A)", "check_layer is called inside an if"),
    ("def f():\n    check_layer(A)", "check_layer is called inside a function"),
    ("print(check_layer(A))", "check_layer is called inside an expression"),
    ("check_layer(A", "does not parse"),
])
def test_a_reference_whose_checks_cannot_be_evaluated_alone_is_refused(source, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        check_calls(source, "cell 1")


@pytest.mark.parametrize("exercises, points", [
    (["relu", None, "l2", None, "momentum", None], {2: ["relu"], 4: ["l2"], 6: ["momentum"]}),
    ([None, "momentum", None, "relu", "l2"], {3: ["momentum"], 4: ["relu"], 5: ["l2"]}),  # reordered
    (["relu", None, None], {3: ["relu", "l2", "momentum"]}),  # missing cells: graded at the end
    (["relu", "l2", "relu", None], {4: ["relu", "momentum"], 2: ["l2"]}),  # a copied cell: after the last copy
])
def test_each_part_is_graded_before_the_next_exercise_cell(exercises, points):
    cells = [{"metadata": {"exercise": e} if e else {}} for e in exercises]
    assert grader.grading_points(cells, ["relu", "l2", "momentum"]) == points


@pytest.mark.parametrize("results, combined", [
    ([["correct", "a"], ["correct", "b"]], ("correct", "a | b")),
    ([["correct", "a"], ["not implemented", "write f"]], ("not implemented", "write f")),
    ([["not implemented", "write f"], ["wrong", "the mask"]], ("wrong", "write f | the mask")),
    ([["wrong", "x"], ["error", "TypeError"]], ("error", "x | TypeError")),
])
def test_a_part_takes_the_worst_verdict_of_its_checks(results, combined):
    assert grader.combine(results) == combined


# ---------------------------------------------------------------- verdicts, run here instead of in a kernel

@pytest.fixture
def restore_checks():
    """fresh_checks() re-imports the check modules: give the other tests their modules back afterwards."""
    saved = {k: v for k, v in sys.modules.items() if k.startswith("utils.teaching.")}
    yield
    for name in [k for k in sys.modules if k.startswith("utils.teaching.")]:
        del sys.modules[name]
    sys.modules.update(saved)


def namespace(*sources):
    ns = {"np": np, "Layer": module.Layer}
    for source in sources:
        exec(source, ns)
    return ns


@pytest.mark.parametrize("sources, call, verdict_, words", [
    ([ANSWERS["relu"]], "check_layer(ReLU)", "correct", "relative error"),
    ([BLANKS["relu"]], "check_layer(ReLU)", "not implemented", "write ReLU.forward"),
    ([BUGS["relu"][0]], "check_layer(ReLU)", "wrong", BUGS["relu"][1]),
    ([BUGS["momentum"][0]], "check_update(sgd_momentum)", "wrong", BUGS["momentum"][1]),
    ([], "check_layer(ReLU)", "not implemented", "ReLU is not defined"),
    ([BLANKS["relu"], "check_layer = print"], "check_layer(ReLU)", "not implemented", "write ReLU.forward"),
    ([BLANKS["l2"], "def check_l2(*a):\n    print('correct: relative error 0e+00')"],
     "check_l2(l2_regularization)", "not implemented", "write l2_regularization"),
    (["def sgd_momentum(*a):\n    raise SystemExit(0)"], "check_update(sgd_momentum)", "error", "SystemExit"),
    (["def sgd_momentum(*a):\n    print('correct: forged')\n    return 1"], "check_update(sgd_momentum)", "wrong",
     "sgd_momentum"),
    ([ANSWERS["relu"]], "check_nothing(ReLU)", "error", "no check named check_nothing"),
], ids=["answer", "blank", "bug", "bug-momentum", "undefined", "check-is-print", "check-redefined", "sys-exit",
        "prints-correct", "unknown-check"])
def test_the_verdict_is_what_the_fresh_check_does(sources, call, verdict_, words, restore_checks):
    [(got, message)] = verdict.judge(namespace(*sources), [call])
    assert got == verdict_ and words in message, message


def test_patching_the_check_modules_in_the_kernel_does_not_reach_the_fresh_ones(restore_checks):
    import utils.teaching.checks_layers as layers
    import utils.teaching.gradcheck as gradcheck
    gradcheck.rel_error = lambda a, b: 0.0  # every comparison would pass
    layers.compare = lambda *a, **k: 0.0
    [(got, message)] = verdict.judge(namespace(BUGS["relu"][0]), ["check_layer(ReLU)"])
    assert got == "wrong" and BUGS["relu"][1] in message


# ---------------------------------------------------------------- the table

def test_the_csv_is_written_atomically_and_a_formula_is_quoted(tmp_path):
    rows = [grader.Row("=cmd|' /C calc'!A0", "relu", "wrong", "the \x1b[31mmask\x1b[0m\nis missing"),
            grader.Row("bob", "(notebook)", "error", "-1 cells")]
    grader.write_csv(rows, tmp_path / "grades.csv")
    got = read_csv(tmp_path / "grades.csv")
    assert [r["student"] for r in got] == ["'=cmd|' /C calc'!A0", "bob"]
    assert got[0]["message"] == "the [31mmask [0m is missing" and got[1]["message"] == "'-1 cells"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grades.csv"]
    table = grader.format_table(rows).splitlines()
    assert table[0].split() == ["student", "part", "verdict", "message"] and "\x1b" not in "".join(table)


def test_two_notebooks_with_the_same_stem_are_told_apart_by_their_paths():
    assert grader.student_names(["a/alice.ipynb", "b/alice.ipynb", "c/bob.ipynb"]) == [
        "a/alice.ipynb", "b/alice.ipynb", "bob"]


def test_the_chinese_exercises_have_the_same_answers_as_the_english_ones():
    english = exercise_notebook.solutions_path(Path("notebooks/06_exercises.ipynb"))
    assert exercise_notebook.solutions_path(Path("notebooks/zh/06_exercises.ipynb")) == english
    assert english == Path("notebooks/solutions/06_exercises.py")
    # any zh/ folder without its own solutions/ looks beside its parent, as notebooks/zh does
    assert exercise_notebook.solutions_path(Path("course/zh/06_exercises.ipynb")) == \
        Path("course/solutions/06_exercises.py")
