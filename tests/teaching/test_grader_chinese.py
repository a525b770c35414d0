"""The grader's report in Chinese (NN_LANG=zh), without a kernel: the printed table (header, verdicts,
"(notebook)"), the summary and the messages of cells that hit a limit come in Chinese, while the CSV keeps
its English column names and verdicts; in English the report is as before."""
import contextlib
import csv
import io
import re
import unicodedata

import pytest

from tests.teaching.grader_notebooks import handed_out, student, write
from utils.teaching import grader
from utils.teaching.exercise_notebook import reference_parts
from utils.teaching.sandbox import Outcome

CJK = re.compile(r"[\u4e00-\u9fff]")


def grade(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = grader.main(argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue()


@pytest.fixture
def no_kernel(monkeypatch):
    monkeypatch.setattr(grader, "Sandbox", lambda *a, **k: pytest.fail("a kernel was started"))


def columns(text):
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_the_report_of_notebooks_that_cannot_be_graded_in_chinese_and_its_csv_in_english(tmp_path, monkeypatch,
                                                                                         no_kernel):
    monkeypatch.setenv("NN_LANG", "zh")
    (tmp_path / "empty").mkdir()
    (tmp_path / "alice.ipynb").write_text("{}")
    reference = write(handed_out(), tmp_path / "reference.ipynb")
    code, printed = grade([str(tmp_path / "alice.ipynb"), str(tmp_path / "empty"), "--reference", str(reference),
                           "--csv", str(tmp_path / "grades.csv")])
    assert code == 1 and "Traceback" not in printed
    lines = printed.splitlines()
    header = next(line for line in lines if line.startswith("学生"))
    assert header.split() == ["学生", "部分", "判定", "说明"]
    rows = [line for line in lines if line.startswith(("alice", "empty"))]
    assert len(rows) == 2 and all("（整个笔记本）" in r and "出错" in r for r in rows)
    # The columns line up in a terminal, where a Chinese character takes two columns.
    starts = {columns(line[:line.index(word)]) for line, word in [(header, "判定"), *((r, "出错") for r in rows)]}
    assert len(starts) == 1, printed
    assert "这个文件夹中没有笔记本（*.ipynb）" in printed and "正在评分" in printed
    assert "2 个笔记本中已评分 0 个；各部分：无" in printed and "已写入" in printed
    with open(tmp_path / "grades.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == ["student", "part", "verdict", "message"]
    assert {(r["part"], r["verdict"]) for r in got} == {("(notebook)", "error")}


def test_bad_options_are_one_line_errors_in_chinese(tmp_path, monkeypatch, no_kernel):
    monkeypatch.setenv("NN_LANG", "zh")
    reference = write(handed_out(), tmp_path / "reference.ipynb")
    for options, words in [(["--timeout-cell", "0"], "--timeout-cell 必须是大于 0 的秒数，实际为 0"),
                           (["--csv", str(tmp_path)], "这是一个文件夹；应给出要写入的 CSV 文件名")]:
        code, printed = grade([str(tmp_path), "--reference", str(reference), *options])
        assert code == 1 and words in printed and "Traceback" not in printed, printed


class FakeBox:
    """A sandbox without a kernel: each cell's outcome chosen by what the cell holds."""
    memory_mb = 4096

    def __init__(self):
        self.alive = True

    def run(self, code, timeout):
        if "while True" in code:
            return Outcome("timeout", "", "", [])
        if "10 ** 12" in code:
            return Outcome("error", "MemoryError", "", [])
        if "check_layer" in code and "verdict" in code:
            return Outcome("timeout", "", "", [])
        if "check_update" in code and "verdict" in code:
            self.alive = False
            return Outcome("died", "", "", [])
        if "check_l2" in code and "verdict" in code:
            nonce = re.search(r"'([0-9a-f]{32})'\)$", code).group(1)
            return Outcome("ok", "", "", [{"nonce": nonce, "results": [["wrong", "L2 applied to biases"]]}])
        return Outcome("ok", "", "", [])


def graded(lang, monkeypatch):
    """The rows, table and summary of a student whose cells loop, hog memory and whose checks hang or die."""
    monkeypatch.setenv("NN_LANG", lang)
    nb = student({"relu": "while True:\n    pass", "l2": "x = np.ones(10 ** 12)"})
    verdicts, notes = grader.NotebookRun(FakeBox(), nb, reference_parts(handed_out()), 120).go()
    rows = [grader.Row("alice", part, *verdicts[part]) for part in verdicts]
    return {r.part: r for r in rows}, grader.format_table(rows), grader.summary(rows, [True])


def test_the_messages_of_a_graded_notebook_in_chinese(monkeypatch):
    rows, table, summary = graded("zh", monkeypatch)
    assert {part: r.verdict for part, r in rows.items()} == {"relu": "error", "l2": "error", "momentum": "error"}
    assert "第 3 个单元格超过了 120 秒的时间限制" in rows["relu"].message
    assert "check_layer(ReLU) 超过了 120 秒的时间限制（它运行的代码里有死循环？）" in rows["relu"].message
    assert rows["relu"].message.startswith("第 3 个单元格超过了 120 秒的时间限制；check_layer(ReLU)")
    assert "第 6 个单元格内存不足（上限为 4096 MB）" in rows["l2"].message
    assert "L2 applied to biases" in rows["l2"].message  # the check's own words: translated by the checks
    assert rows["momentum"].message == "check_update(sgd_momentum) 运行学生的代码时内核崩溃"
    assert table.splitlines()[0].split() == ["学生", "部分", "判定", "说明"] and " 出错 " in table
    assert summary == "1 个笔记本中已评分 1 个；各部分：出错 3 个"


def test_the_same_notebook_in_english_is_reported_as_before(monkeypatch):
    rows, table, summary = graded("en", monkeypatch)
    assert "cell 3 exceeded the time limit of 120 s" in rows["relu"].message
    assert "check_layer(ReLU) exceeded the time limit of 120 s (a loop in the code it runs?)" in rows["relu"].message
    assert "cell 6 ran out of memory (the limit is 4096 MB)" in rows["l2"].message
    assert rows["momentum"].message == "the kernel died while check_update(sgd_momentum) ran the student's code"
    assert not CJK.search(table + summary)
    assert table.splitlines()[0].split() == ["student", "part", "verdict", "message"]
    assert summary == "1 of 1 notebooks graded; parts: 3 error"
