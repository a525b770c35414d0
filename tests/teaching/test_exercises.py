"""The exercises notebook: handed out with every blank empty, and every check correct with the solutions."""
import re
from pathlib import Path

import nbformat
import pytest

from utils.teaching.grader import fill_solutions, read_solutions, run, solutions_path, verdicts

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "06_exercises.ipynb"


def exercise_cells(nb):
    return [cell for cell in nb.cells if "exercise" in cell.metadata]


def test_the_committed_notebook_has_every_blank_empty_and_says_so():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = exercise_cells(nb)
    assert len(cells) >= 12
    assert all("raise NotImplementedError" in cell.source for cell in cells)
    lines = [line for _, line in verdicts(nb)]
    assert lines and all(line.startswith("not implemented yet: write ") for line in lines), lines


def test_every_exercise_cell_has_a_solution():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    solutions = read_solutions(solutions_path(NOTEBOOK))
    assert sorted(cell.metadata["exercise"] for cell in exercise_cells(nb)) == sorted(solutions)
    fill_solutions(nb, solutions)
    assert not any("NotImplementedError" in cell.source for cell in exercise_cells(nb))
    with pytest.raises(ValueError, match="no solution for the exercise cells"):
        fill_solutions(nbformat.read(NOTEBOOK, as_version=4), {})


@pytest.mark.slow  # part E trains two networks for 5 epochs: 9 to 16 minutes on 2 cores shared with other jobs
def test_with_the_solutions_filled_in_every_check_says_correct():
    """Also the end to end: the student-written networks reach the bar (check_trained says correct)."""
    nb, found = run(NOTEBOOK, solutions=True)
    checks = sum(len(re.findall(r"^check_\w+\(", cell.source, re.MULTILINE)) for cell in nb.cells
                 if cell.cell_type == "code")
    lines = [line for _, line in found]
    assert all(line.startswith("correct:") for line in lines), lines
    assert len(lines) == checks == 24
    assert sum("validation accuracy" in line and ">= 0.85" in line for line in lines) == 2, lines
    # The real grid search ran on the student's loop and printed its table (8 points), best first.
    table = next(cell for cell in nb.cells if "grid_search(SPACE, score)" in cell.source).outputs[0]["text"]
    assert "val_acc" in table and len(table.splitlines()) == 9, table
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert next(cell for cell in committed.cells if cell.source == "check_layer(Linear)").outputs[0][
        "text"].startswith("not implemented yet")
