"""The Chinese edition as committed: executed (make run-zh), with its figures drawn in a CJK font, and
with nothing left in English for a Chinese reader but code, identifiers and the names of libraries.

The English notebooks are the source and the catalogs' tests (test_translations.py) keep the text in
step; these tests look at what a student opens: notebooks/zh/ with its stored outputs.
"""
import json

import pytest

from utils.plumbing import english_left, translate

NOTEBOOKS = translate.english_notebooks()


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def outputs_text(cell):
    return "".join(translate.source({"source": o.get("text", "")}) + json.dumps(o.get("data", {}).get("text/plain", ""))
                   for o in cell.get("outputs", []))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_chinese_notebook_is_committed_executed_like_the_english_one(notebook):
    english = [bool(c.get("outputs")) for c in cells(notebook) if c["cell_type"] == "code"]
    chinese = [bool(c.get("outputs")) for c in cells(translate.EDITION_DIR / notebook.name) if c["cell_type"] == "code"]
    missing = [i for i, (en, zh) in enumerate(zip(english, chinese)) if en and not zh]
    assert not missing, (f"code cells {missing} of notebooks/zh/{notebook.name} have no stored output though the "
                         f"English ones do: run make run-zh (a changed code cell loses its Chinese outputs)")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_chinese_figure_was_drawn_with_a_missing_glyph_or_without_the_cjk_font(notebook):
    found = [i for i, c in enumerate(cells(translate.EDITION_DIR / notebook.name))
             if "missing from font" in outputs_text(c) or "No CJK font found" in outputs_text(c)]
    assert not found, (f"cells {found} of notebooks/zh/{notebook.name} warn of a missing glyph or font: "
                       f"install fonts-noto-cjk and run make run-zh")


@pytest.mark.parametrize("source", translate.english_sources(), ids=lambda p: p.stem)
def test_a_chinese_reader_meets_no_english_sentence(source):
    found = english_left.english_lines(source)
    assert not found, (f"{translate.shown(translate.edition_path(source))} still shows English (cell: line); "
                       f"translate the markdown, or pass the printed text through _() / say(), then make run-zh:\n"
                       + "\n".join(f"  {i}: {line[:140]}" for i, line in found))


def test_no_figure_text_is_drawn_without_label():
    found = english_left.figure_text_in_code()
    assert not found, ("figure text written as a bare literal would stay English in a Chinese figure; wrap it in "
                       "utils.plumbing.fonts.label():\n" + "\n".join(f"  {w}: {t!r}" for w, t in found))
