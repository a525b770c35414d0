"""The Chinese edition stays in step with the English notebooks (utils/plumbing/translate.py).

On a small notebook of its own: an edited English cell, a new cell or a translation that lost a
formula is reported; update keeps the old translation as fuzzy; build keeps the stored outputs
of unchanged code. On the real notebooks: every markdown cell has an up-to-date translation, and
notebooks/zh/ has the English code cells (plus the language line) and the catalogs' markdown.
"""
import json

import pytest

from utils.plumbing import english_left, language, po, translate


def cell(kind, text, cell_id):
    extra = {"outputs": [], "execution_count": None} if kind == "code" else {}
    return {"cell_type": kind, "id": cell_id, "metadata": {}, "source": text, **extra}


def write_notebook(path, cells):
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A one-notebook course in tmp_path, translated, with the module's folders pointing there."""
    monkeypatch.setattr(translate, "NOTEBOOK_DIR", tmp_path)
    monkeypatch.setattr(translate, "EDITION_DIR", tmp_path / "zh")
    monkeypatch.setattr(translate, "CATALOG_DIR", tmp_path / "locale")
    nb = write_notebook(tmp_path / "01_demo.ipynb", [
        cell("markdown", "# Demo\n\nThe loss is $L = -\\log p_y$.", "a1"),
        cell("code", "import numpy as np\nx = np.ones(3)", "c1"),
        cell("markdown", "Call `train(model)` next.", "a2"),
        cell("code", "print(x.sum())", "c2"),
    ])
    assert translate.update(nb) == {"new": 2, "fuzzy": 0, "obsolete": 0}
    set_translations(nb, {"01_demo/a1": "# 演示\n\n损失是 $L = -\\log p_y$。", "01_demo/a2": "接着调用 `train(model)`。"})
    return nb


def set_translations(nb, chinese):
    entries = translate.load(nb)
    for entry in entries:
        if entry.context in chinese:
            entry.msgstr = chinese[entry.context]
            entry.flags.discard("fuzzy")
            entry.previous = None
    translate.save(entries, translate.catalog_path(nb))


def edit_markdown(nb, cell_id, text):
    data = json.loads(nb.read_text(encoding="utf-8"))
    for c in data["cells"]:
        if c["id"] == cell_id:
            c["source"] = text
    nb.write_text(json.dumps(data, indent=1), encoding="utf-8")


def test_a_translated_notebook_has_no_problems_and_builds_in_chinese(course):
    assert translate.problems(course) == []
    assert translate.build(course) == []
    built = json.loads((course.parent / "zh" / course.name).read_text(encoding="utf-8"))
    assert [c["source"] for c in built["cells"]] == [
        "# 演示\n\n损失是 $L = -\\log p_y$。", translate.LANGUAGE_LINE + "import numpy as np\nx = np.ones(3)",
        "接着调用 `train(model)`。", "print(x.sum())"]


def test_editing_one_english_cell_alone_fails_the_freshness_check(course):
    edit_markdown(course, "a2", "Call `train(model, data)` next.")
    assert [c for c, _ in translate.problems(course)] == ["01_demo/a2"]
    counts = translate.update(course)
    assert counts["fuzzy"] == 1
    entry = {m.context: m for m in translate.load(course)}["01_demo/a2"]
    assert entry.fuzzy and entry.previous == "Call `train(model)` next."
    assert entry.msgstr == "接着调用 `train(model)`。"  # kept for the translator to revise
    assert "fuzzy" in translate.problems(course)[0][1]
    assert translate.build(course) == ["01_demo/a2"]  # the stale translation is not shown: the English is
    built = json.loads((course.parent / "zh" / course.name).read_text(encoding="utf-8"))
    assert built["cells"][2]["source"] == "Call `train(model, data)` next."
    set_translations(course, {"01_demo/a2": "接着调用 `train(model, data)`。"})
    assert translate.problems(course) == []


def test_a_new_cell_without_translation_fails_and_a_deleted_one_becomes_obsolete(course):
    data = json.loads(course.read_text(encoding="utf-8"))
    data["cells"] = [data["cells"][0], data["cells"][1], data["cells"][3],
                     cell("markdown", "A new closing note.", "a3")]
    course.write_text(json.dumps(data), encoding="utf-8")
    assert translate.problems(course) == [("01_demo/a3", translate.problems(course)[0][1])]
    assert "no entry" in translate.problems(course)[0][1]
    assert translate.update(course) == {"new": 1, "fuzzy": 0, "obsolete": 1}
    assert translate.problems(course) == [("01_demo/a3", "not translated yet")]
    assert [e.msgstr for e in translate.load(course) if e.obsolete] == ["接着调用 `train(model)`。"]
    translate.update(course)  # and stays there
    assert [e.msgstr for e in translate.load(course) if e.obsolete] == ["接着调用 `train(model)`。"]


def test_a_moved_cell_with_a_new_id_keeps_its_translation(course):
    data = json.loads(course.read_text(encoding="utf-8"))
    data["cells"][2]["id"] = "zz"
    course.write_text(json.dumps(data), encoding="utf-8")
    translate.update(course)
    assert translate.problems(course) == []


def test_a_translation_left_in_english_is_reported(course):
    set_translations(course, {"01_demo/a2": "Call `train(model)` next."})
    assert translate.problems(course) == [("01_demo/a2", "the translation has no Chinese character: still the English?")]


def test_a_translation_that_changes_a_formula_or_code_span_is_reported(course):
    set_translations(course, {"01_demo/a1": "# 演示\n\n损失是 $L = \\log p_y$。"})
    (context, what), = translate.problems(course)
    assert context == "01_demo/a1" and "$L = -\\log p_y$" in what


def test_rebuilding_keeps_the_outputs_of_unchanged_code_and_drops_those_of_changed_code(course):
    translate.build(course)
    target = course.parent / "zh" / course.name
    built = json.loads(target.read_text(encoding="utf-8"))
    for c in built["cells"]:
        if c["cell_type"] == "code":
            c["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "3.0\n"}]
            c["execution_count"] = 1
    target.write_text(json.dumps(built), encoding="utf-8")
    data = json.loads(course.read_text(encoding="utf-8"))
    data["cells"][3]["source"] = "print(x.mean())"
    course.write_text(json.dumps(data), encoding="utf-8")
    translate.build(course)
    rebuilt = json.loads(target.read_text(encoding="utf-8"))["cells"]
    assert rebuilt[1]["outputs"] and rebuilt[1]["execution_count"] == 1
    assert rebuilt[3]["outputs"] == [] and rebuilt[3]["execution_count"] is None


def test_a_markdown_cell_without_id_and_a_file_that_is_no_notebook_get_clear_errors(course, tmp_path):
    bad = write_notebook(tmp_path / "02_bad.ipynb", [{"cell_type": "markdown", "metadata": {}, "source": "x"}])
    with pytest.raises(ValueError, match="markdown cell 0 has no id"):
        translate.markdown_cells(bad)
    (tmp_path / "03_junk.ipynb").write_text("not json", encoding="utf-8")
    with pytest.raises(ValueError, match="03_junk.ipynb cannot be read as a notebook"):
        translate.markdown_cells(tmp_path / "03_junk.ipynb")
    broken = translate.catalog_path(course)
    broken.write_bytes(b'msgid "a"\nmsgstr "b\n')
    with pytest.raises(ValueError, match=r"01_demo.po, line 2: expected a quoted string"):
        translate.problems(course)


def test_check_command_exits_1_and_names_the_cell(course, capsys):
    edit_markdown(course, "a1", "# Demo, edited")
    assert translate.main(["check"]) == 1
    assert "01_demo/a1" in capsys.readouterr().out
    assert translate.main(["frobnicate"]) == 2
    assert translate.main(["check", str(course.parent / "nope.ipynb")]) == 2


# The real course --------------------------------------------------------------------------------

ENGLISH = translate.english_notebooks()


@pytest.mark.parametrize("notebook", translate.english_sources(), ids=lambda p: p.stem)
def test_every_markdown_cell_has_an_up_to_date_translation(notebook):
    found = translate.problems(notebook)
    assert not found, (f"{len(found)} markdown cells of notebooks/{notebook.name} lack an up-to-date Chinese "
                       f"translation: run make zh, translate the entries of "
                       f"{translate.shown(translate.catalog_path(notebook))} (msgctxt below), remove their "
                       f"fuzzy marks, run make zh again:\n" + "\n".join(f"  {c}: {w}" for c, w in found))


@pytest.mark.parametrize("notebook", ENGLISH, ids=lambda p: p.stem)
def test_the_chinese_notebook_has_the_english_code_and_the_catalogs_text(notebook, tmp_path, monkeypatch):
    chinese = translate.EDITION_DIR / notebook.name
    assert chinese.is_file(), f"{translate.shown(chinese)} is missing: run make zh"
    en = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    zh = json.loads(chinese.read_text(encoding="utf-8"))["cells"]
    assert [(c["cell_type"], c.get("id")) for c in zh] == [(c["cell_type"], c.get("id")) for c in en], (
        f"{translate.shown(chinese)} does not have the cells of notebooks/{notebook.name}: run make zh")
    code_en = [translate.source(c) for c in en if c["cell_type"] == "code"]
    code_zh = [translate.source(c) for c in zh if c["cell_type"] == "code"]
    assert code_zh[0].startswith(translate.LANGUAGE_LINE), "the first code cell should set the language first"
    code_zh[0] = code_zh[0][len(translate.LANGUAGE_LINE):]
    differ = [i for i, (a, b) in enumerate(zip(code_en, code_zh)) if a != b]
    assert not differ, (f"code cells {differ} of {translate.shown(chinese)} differ from the English ones "
                        f"(beyond the language line): run make zh")
    monkeypatch.setattr(translate, "EDITION_DIR", tmp_path)  # what make zh would write now
    translate.build(notebook)
    fresh = json.loads((tmp_path / notebook.name).read_text(encoding="utf-8"))["cells"]
    stale = [c["id"] for c, f in zip(zh, fresh)
             if c["cell_type"] == "markdown" and translate.source(c) != translate.source(f)]  # str or list of lines
    assert not stale, f"the markdown of cells {stale} is not what the catalog says: run make zh"


@pytest.mark.parametrize("document", translate.DOCUMENTS, ids=lambda p: p.stem)
def test_the_chinese_document_is_what_its_catalog_says(document, tmp_path, monkeypatch):
    chinese = translate.edition_path(document)
    assert chinese.is_file(), f"{translate.shown(chinese)} is missing: run make zh"
    monkeypatch.setattr(translate, "edition_path", lambda path: tmp_path / path.name)
    translate.build(document)
    assert chinese.read_text(encoding="utf-8") == (tmp_path / document.name).read_text(encoding="utf-8"), (
        f"{translate.shown(chinese)} is not what the catalog says: run make zh")


def test_a_document_is_translated_block_by_block_keyed_by_question(tmp_path, monkeypatch):
    monkeypatch.setattr(translate, "CATALOG_DIR", tmp_path / "catalogs")
    (tmp_path / "catalogs").mkdir()
    doc = tmp_path / "answers.md"
    doc.write_text("# Answers\n\n**Question 1.** Because `N`.\n\nA closing remark.\n", encoding="utf-8")
    assert [c for c, _ in translate.markdown_cells(doc)] == ["answers/h-Answers", "answers/q1", "answers/p2"]
    translate.update(doc)
    entries = translate.load(doc)
    for e in entries[1:]:
        e.msgstr = {"answers/q1": "**问题 1.** 因为 `N`。", "answers/h-Answers": "# 答案"}.get(e.context, "")
    translate.save(entries, translate.catalog_path(doc))
    assert [c for c, _ in translate.problems(doc)] == ["answers/p2"]
    assert translate.build(doc) == ["answers/p2"]
    assert (tmp_path / "zh" / "answers.md").read_text(encoding="utf-8") == (
        "# 答案\n\n**问题 1.** 因为 `N`。\n\nA closing remark.\n")
    doc.write_text("# Answers\n\n**Question 1.** Because `M`.\n\nA closing remark.\n", encoding="utf-8")
    translate.update(doc)
    assert ("answers/q1", "fuzzy: the English changed since it was translated; compare with #| msgid") in \
        translate.problems(doc)



def test_the_chinese_notebooks_run_under_nbval_only_when_named():
    import importlib.util

    path = translate.EDITION_DIR / "conftest.py"
    spec = importlib.util.spec_from_file_location("zh_conftest", path)
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)

    class Config:
        def __init__(self, *args):
            self.args = list(args)

    notebook = translate.EDITION_DIR / "01_data_preparation.ipynb"
    assert conftest.pytest_ignore_collect(notebook, Config(str(translate.NOTEBOOK_DIR))) is True
    assert conftest.pytest_ignore_collect(notebook, Config(str(translate.EDITION_DIR))) is None
    assert conftest.pytest_ignore_collect(notebook, Config(f"{notebook}::Cell 0")) is None


def test_every_text_the_code_passes_to_the_lookup_has_a_chinese_translation():
    table = {e.msgid: e for path in language.catalog_paths("zh") for e in po.read(path) if e.msgid and not e.obsolete}
    used = translate.messages_in_code()
    assert len(used) >= 3  # the literal say() sentences of the notebooks at least: the extraction works
    missing = {text: places[0] for text, places in used.items()
               if text not in table or not table[text].msgstr or table[text].fuzzy}
    assert not missing, ("these texts are passed to _(), label(), labels() or say() but have no up-to-date "
                         "translation in locale/zh_CN/LC_MESSAGES/*.po (make zh adds them to messages.po; "
                         "translate them there or in the catalog of their part):\n" + "\n".join(f"  {t!r}  ({w})" for t, w in missing.items()))


def test_update_messages_adds_what_the_code_uses_and_keeps_the_rest(tmp_path, monkeypatch):
    path = tmp_path / "messages.po"
    po.write(path, [po.Entry("", "Language: zh_CN\n"), po.Entry("Not used yet", "还没用到")])
    monkeypatch.setattr(translate, "messages_path", lambda lang: path)
    monkeypatch.setattr(translate, "code_sources", lambda: [
        ("a.py", 'say("Done.")\nax.set_title(label("Loss"))\nnames = labels(["Bag", "Coat"])\nsay(f"{x}")\n')])
    assert translate.update_messages() == 4
    entries = po.read(path)
    assert [e.msgid for e in entries[1:]] == ["Not used yet", "Done.", "Loss", "Bag", "Coat"]
    assert entries[2].comments == ["used in a.py:1"] and entries[2].msgstr == ""
    assert translate.update_messages() == 0


def test_the_english_left_in_a_chinese_notebook_is_listed(course):
    translate.build(course)
    target = course.parent / "zh" / course.name
    built = json.loads(target.read_text(encoding="utf-8"))
    built["cells"][3]["outputs"] = [
        {"output_type": "stream", "name": "stdout", "text": ["best epoch 7: validation accuracy 0.9012\n", "最佳 7\n"]},
        {"output_type": "display_data", "metadata": {}, "data": {"text/plain": "验证准确率 90.1%"}}]
    target.write_text(json.dumps(built), encoding="utf-8")
    assert english_left.english_lines(course) == [(3, "best epoch 7: validation accuracy 0.9012")]


def test_figure_text_written_without_label_is_found(monkeypatch):
    monkeypatch.setattr(english_left, "code_sources", lambda: [("a.py", (
        'ax.set_title("Loss curves")\n'
        'ax.set_xlabel(label("epoch"))\n'
        'ax.plot(x, y, label=f"lr {lr}")\n'
        'ax.set(xlabel="step", ylabel=label("loss"))\n'
        'fig.suptitle("验证准确率")\n'
        'ax.text(0, 1, "n=3")\n'))])
    assert english_left.figure_text_in_code() == [("a.py:1", "Loss curves"), ("a.py:4", "step")]


def test_a_program_message_quoted_as_code_may_be_quoted_in_its_chinese_form():
    english = ["`not implemented yet: write ..., then rerun this cell`", "`dx = dout @ W.T`"]
    quoted = ["`还没有实现：先写好 ...，再重新运行这个单元格`", "`dx = dout @ W.T`"]
    assert translate.span_difference(english, quoted) == ([], [])
    # Code is not a message: changing it is still reported, and so is a Chinese quote of another message.
    changed = ["`还没有实现`", "`dx = dout @ W`"]
    assert translate.span_difference(english, changed) == (english, changed)


def test_the_words_of_a_formula_may_be_translated_but_not_its_math():
    english = ["$dX = dY \\cdot \\mathbb{1}[\\text{position is the maximum}]$"]
    assert translate.span_difference(english, ["$dX = dY \\cdot \\mathbb{1}[\\text{该位置是最大值}]$"]) == ([], [])
    changed = ["$dX = dY \\odot \\mathbb{1}[\\text{该位置是最大值}]$"]
    assert translate.span_difference(english, changed) == (english, changed)


def test_english_words_of_a_formula_in_a_chinese_notebook_are_listed(course):
    translate.build(course)
    target = course.parent / "zh" / course.name
    built = json.loads(target.read_text(encoding="utf-8"))
    built["cells"][0]["source"] = "# 演示\n\n$$W_\\text{flat} = \\sum_{\\text{kernel row}} x$$ 与 $\\text{最大值}$"
    target.write_text(json.dumps(built), encoding="utf-8")
    assert english_left.english_lines(course) == [(0, "\\text{kernel row}")]
