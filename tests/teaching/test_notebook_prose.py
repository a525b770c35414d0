"""The notebooks' prose states only what their own run printed.

Every decimal number in a markdown cell (outside LaTeX) must appear in an output of the same
notebook, so a sentence left behind by an earlier run fails here. Results belong in
sentences that a code cell prints from the computed values (utils.teaching.prose.say).
The test set is reported, never used to decide: no notebook asserts a test-accuracy threshold.
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The lessons, stored with their outputs (06_exercises is stored unexecuted, for the reader to fill in).
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[1-5]_*.ipynb"))
DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+)(?!\w|\.\d)")  # "0.9019." counts, "1.2.3" does not
LATEX = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$", re.S)
LINK = re.compile(r"\]\([^)\s]*\)|https?://\S+")  # a link's address is not a claim


def markdown_decimals(cells):
    """{number: first markdown cell index} of the decimals in markdown cells, LaTeX left out."""
    found = {}
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown":
            for number in DECIMAL.findall(LINK.sub(" ", LATEX.sub(" ", "".join(cell["source"])))):
                found.setdefault(number, i)
    return found


def output_text(cells):
    """Everything the code cells printed or displayed as text."""
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            parts += ["".join(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def test_the_number_check_sees_stale_numbers_and_skips_latex():
    cells = [{"cell_type": "markdown", "source": ["Accuracy 0.9019, $\\eta = 0.03$ and\n",
                                                  "$$x = 1.5$$ then 2.38 s; version 1.2.3; it ends at 0.25; ",
                                                  "[a paper](https://arxiv.org/abs/1708.07747)."]},
             {"cell_type": "code", "source": [], "outputs": [{"output_type": "stream", "text": ["0.9019\n"]}]}]
    assert markdown_decimals(cells) == {"0.9019": 0, "2.38": 0, "0.25": 0}
    stale = [n for n in markdown_decimals(cells) if n not in output_text(cells)]
    assert stale == ["2.38", "0.25"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_number_in_the_prose_is_printed_by_the_run(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert all(c.get("execution_count") for c in code), f"{path.name} is stored without its outputs"
    printed = output_text(cells)
    stale = {n: i for n, i in markdown_decimals(cells).items() if n not in printed}
    assert not stale, (f"{path.name}: numbers in markdown cells that no output of the notebook prints "
                       f"(number: cell index) {stale}; print the sentence from the run (utils.teaching.prose.say) "
                       "or drop the number")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_notebook_gates_on_the_test_set(path):
    source = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                       if c["cell_type"] == "code")
    gates = re.findall(r"assert[^\n]*test_acc[^\n]*[<>]=?[^\n]*", source)
    assert not gates, f"{path.name} decides on the test set: {gates}"
