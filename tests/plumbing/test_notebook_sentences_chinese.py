"""Notebooks 00-02's computed sentences and printed lines, and the search's table headers, in Chinese.

Each template is the one the notebook passes to say() or _() (checked against the code, so the test
follows the notebooks); with NN_LANG=zh it comes out in Chinese with the same numbers and identifiers,
and in English it is the sentence the English notebook prints.
"""
import re
import string

import pandas as pd
import pytest

from utils.plumbing import po, translate
from utils.plumbing.language import _, catalog_path
from utils.search.results import header, shown
from utils.teaching.prose import say

CATALOG = catalog_path("zh", "notebooks_a.po")
CJK = re.compile(r"[\u4e00-\u9fff]")

# (notebook, template, values, the English the notebook prints, what the Chinese keeps)
CASES = [
    ("01_data_preparation",
     "Every class has exactly {train:,} training and {test:,} test images, so guessing scores {chance}.",
     dict(train=6000, test=1000, chance="10%"),
     "Every class has exactly 6,000 training and 1,000 test images, so guessing scores 10%.",
     ["6,000", "1,000", "10%"]),
    ("01_data_preparation",
     "{n_val:,} of the {n_all:,} training images ({share}) form the validation set, {per_class:,} of each class.",
     dict(n_val=6000, n_all=60000, share="10%", per_class=600),
     "6,000 of the 60,000 training images (10%) form the validation set, 600 of each class.",
     ["6,000", "60,000", "10%", "600"]),
    ("01_data_preparation", "saved {name}: {size:.1f} MiB", dict(name="fashion_mnist_prepared.npz", size=179.93),
     "saved fashion_mnist_prepared.npz: 179.9 MiB", ["fashion_mnist_prepared.npz", "179.9 MiB"]),
    ("02_hyperparameter_search", "**{complete} complete** and **{pruned} pruned** trials.",
     dict(complete=17, pruned=31), "**17 complete** and **31 pruned** trials.", ["**17 ", "**31 "]),
    ("02_hyperparameter_search",
     "Pruning stopped {pruned} of {trials} trials early: {seconds:.0f} s of training in all, instead of about "
     "{without:.0f} s without pruning, **{saved} saved**.",
     dict(pruned=31, trials=48, seconds=454.2, without=633.4, saved="28%"),
     "Pruning stopped 31 of 48 trials early: 454 s of training in all, instead of about 633 s without pruning, "
     "**28% saved**.", ["31", "48", "454", "633", "28%"]),
    ("02_hyperparameter_search", "* **{name}** (spread {spread:.2f} points): {values}",
     dict(name="lr", spread=3.374, values="0.03 → 0.8837, 0.1 → 0.8792"),
     "* **lr** (spread 3.37 points): 0.03 → 0.8837, 0.1 → 0.8792", ["**lr**", "3.37", "0.03 → 0.8837"]),
    ("02_hyperparameter_search", "reference trials: the first {n} points of the shuffled grid", dict(n=8),
     "reference trials: the first 8 points of the shuffled grid", ["8"]),
]


@pytest.fixture
def english(monkeypatch):
    for name in ("NN_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def chinese(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")


def fields(text):
    """The {name:spec} fields of a template, sorted: a translation must keep them all."""
    return sorted((name, spec) for literal, name, spec, conversion in string.Formatter().parse(text)
                  if name is not None)


def test_the_templates_tested_here_are_the_ones_the_notebooks_use():
    used = translate.messages_in_code()
    for notebook, template, *rest in CASES:
        assert any(notebook in place for place in used.get(template, [])), (notebook, template)


@pytest.mark.parametrize("notebook, template, values, english_text, kept", CASES, ids=lambda v: str(v)[:30])
def test_a_sentence_is_chinese_with_the_same_values(notebook, template, values, english_text, kept, chinese,
                                                    capsys):
    say(template, **values)
    shown_text = capsys.readouterr().out.strip()
    assert CJK.search(shown_text), shown_text
    assert shown_text != english_text
    for value in kept:
        assert value in shown_text, (value, shown_text)


@pytest.mark.parametrize("notebook, template, values, english_text, kept", CASES, ids=lambda v: str(v)[:30])
def test_in_english_the_sentence_is_the_one_the_notebook_printed(notebook, template, values, english_text, kept,
                                                                 english, capsys):
    say(template, **values)
    assert capsys.readouterr().out == english_text + "\n"


def test_class_names_and_headers_of_the_count_table_follow_the_language(monkeypatch):
    counts = pd.DataFrame({"train": [6000, 6000], "test": [1000, 1000]}, index=["T-shirt/top", "Ankle boot"])
    monkeypatch.setenv("NN_LANG", "zh")
    zh = counts.rename(index=_, columns=_)
    assert list(zh.columns) == ["训练", "测试"] and list(zh.index) == ["T恤/上衣", "短靴"]
    assert zh.values.tolist() == counts.values.tolist()
    monkeypatch.setenv("NN_LANG", "en")
    assert counts.rename(index=_, columns=_).to_html() == counts.to_html()


def test_the_search_tables_translate_their_words_and_keep_the_identifiers(monkeypatch):
    table = pd.DataFrame({"trial": [3], "lr": [0.03], "hidden_sizes": ["512-256"], "l2_lambda": [0.001],
                          "val_acc": [0.88367], "epochs": [4], "seconds": [12.34]})
    monkeypatch.setenv("NN_LANG", "zh")
    assert [header(c) for c in table.columns] == ["试验", "lr", "hidden_sizes", "l2_lambda", "验证准确率", "轮数", "秒"]
    html = shown(table, list(table.columns)).to_html()
    assert "试验" in html and "秒" in html and "0.8837" in html and "12.3" in html and ">trial<" not in html
    monkeypatch.setenv("NN_LANG", "en")
    english_html = shown(table, list(table.columns)).set_uuid("t").to_html()
    plain = table.style.format({"lr": "{:g}", "l2_lambda": "{:g}", "val_acc": "{:.4f}", "seconds": "{:.1f}"}) \
        .hide(axis="index").set_uuid("t").to_html()
    assert english_html == plain  # the English table is the one the notebook showed before


def test_every_entry_of_the_catalog_is_chinese_with_the_same_fields():
    entries = [e for e in po.read(CATALOG) if e.msgid]
    assert len(entries) >= 40
    for e in entries:
        assert e.msgstr and not e.fuzzy, e.msgid
        assert CJK.search(e.msgstr) or e.msgid == "; ", e.msgid
        assert fields(e.msgstr) == fields(e.msgid), e.msgid
