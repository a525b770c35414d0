"""The training code's printed text and notebooks 03-05's computed sentences in the reader's language.

With NN_LANG=zh they come out in Chinese with the same numbers and identifiers; without it the
English is exactly what it was (the English notebooks' stored outputs are compared by nbval).
"""
import ast
import re
import string
import unicodedata

import pandas as pd
import pytest

from utils.core.models import mlp, summary
from utils.plumbing import translate
from utils.plumbing.config import describe, load_config
from utils.plumbing.language import _
from utils.teaching.prose import say
from utils.teaching.tables import readable

CJK = re.compile(r"[\u4e00-\u9fff]")
NOTEBOOKS = ("notebooks/03_training.ipynb", "notebooks/04_testing.ipynb", "notebooks/05_convolutional_network.ipynb")


@pytest.fixture
def chinese(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")


@pytest.fixture
def english(monkeypatch):
    monkeypatch.delenv("NN_LANG", raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    for name in ("LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)


def columns(line):
    """Terminal columns of a line: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def test_describe_stays_english_byte_for_byte(english):
    assert describe(load_config("mlp_fashion")) == (
        "MLP with hidden layers 512-256, relu, dropout 0.2; sgd (momentum 0.9), lr 0.03 with cosine decay, "
        "L2 0.001, batch 128, 40 epochs; fashion_mnist")
    assert describe(load_config("lenet5_fashion")) == (
        "LeNet-5; adam, lr 0.003 with cosine decay, L2 0.0005, batch 64, 10 epochs; fashion_mnist")


def test_describe_in_chinese_keeps_the_numbers_and_identifiers(chinese):
    text = describe(load_config("mlp_fashion"))
    assert CJK.search(text) and "MLP with" not in text
    for kept in ("512-256", "relu", "0.2", "sgd", "0.9", "0.03", "0.001", "128", "40", "fashion_mnist"):
        assert kept in text
    assert "余弦调度" in text and "cosine" not in text  # the schedule as the training panel names it
    assert "LeNet-5" in describe(load_config("lenet5_fashion"))


def test_summary_header_in_english_and_in_chinese(english, monkeypatch):
    model = mlp([784, 512, 10], rng=0)
    lines = str(summary(model, 784)).splitlines()
    assert lines[0] == "layer                 output shape   parameters      mult-adds"
    assert lines[-1] == "total                                   407,050        406,528"
    monkeypatch.setenv("NN_LANG", "zh")
    chinese_lines = str(summary(model, 784)).splitlines()
    assert CJK.search(chinese_lines[0]) and CJK.search(chinese_lines[-1])
    assert chinese_lines[1:-1] == lines[1:-1]  # the layer rows are code and numbers
    assert chinese_lines[-1].split()[-2:] == ["407,050", "406,528"]
    assert {columns(line) for line in chinese_lines} == {columns(lines[0])}  # the columns still line up


def test_readable_is_the_table_itself_in_english_and_translated_in_chinese(english, monkeypatch):
    table = pd.DataFrame({"class": ["Shirt", "Trouser"], "recall": [0.723, 0.975],
                          "most confused with": ["T-shirt/top", "-"], "l2_lambda": [0.9, 0.9]}).set_index("class")
    assert readable(table) is table
    monkeypatch.setenv("NN_LANG", "zh")
    shown = readable(table)
    assert list(shown.columns) == [_("recall"), _("most confused with"), "l2_lambda"]  # identifiers stay
    assert shown.index.name == _("class") and list(shown.index) == [_("Shirt"), _("Trouser")]
    assert list(shown.iloc[:, 1]) == [_("T-shirt/top"), "-"]
    assert all(CJK.search(label) for label in (*shown.columns[:2], shown.index.name, *shown.index))
    assert list(shown[_("recall")]) == [0.723, 0.975]
    assert list(table.columns) == ["recall", "most confused with", "l2_lambda"]  # the code's table is not changed


def notebook_templates():
    """{English template: where} of the texts notebooks 03-05 pass to say(), _() and label()."""
    return {text: places[0] for text, places in translate.messages_in_code().items()
            if any(str(p).startswith(NOTEBOOKS) for p in places)}


def fields(template):
    return sorted(f"{name}:{spec}" for literal, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None)


def test_every_template_of_notebooks_03_to_05_has_chinese_with_the_same_fields(chinese):
    templates = notebook_templates()
    assert len(templates) > 60
    for english_text, where in templates.items():
        chinese_text = _(english_text)
        assert chinese_text != english_text, f"{where}: {english_text!r} has no Chinese"
        words = re.sub(r"\{[^}]*\}", "", english_text)  # the text around the fields
        assert translate.CJK.search(chinese_text) or not re.search("[A-Za-z]", words), where
        assert fields(chinese_text) == fields(english_text), where


SENTENCES = [  # (template as the notebook passes it, values, what must survive the translation)
    ("Best epoch **{epoch} of {epochs}**: validation accuracy **{val_acc:.4f}**, loss {val_loss:.4f} (training "
     "accuracy {train_acc:.4f}); the model now holds these weights. Training took {seconds:.1f} s, {per_epoch:.2f} s "
     "per epoch.", dict(epoch=38, epochs=40, val_acc=0.907, val_loss=0.2747, train_acc=0.9563, seconds=77.43,
                        per_epoch=1.944), ["**", "38", "40", "0.9070", "0.2747", "0.9563", "77.4", "1.94"]),
    ("Test loss **{loss:.4f}**, test accuracy **{accuracy:.4f}** ({right:,} of {n:,} images); validation accuracy of "
     "the same weights: {val_acc:.4f}.", dict(loss=0.288, accuracy=0.9019, right=9019, n=10000, val_acc=0.907),
     ["0.2880", "0.9019", "9,019", "10,000", "0.9070"]),
    ("LeNet-5 on the {n:,} test images: test loss **{loss:.4f}**, test accuracy **{accuracy:.4f}**.",
     dict(n=10000, loss=0.2491, accuracy=0.9149), ["LeNet-5", "10,000", "0.2491", "0.9149"]),
    ("{epochs} epochs of {steps} steps: T = {T:,} iterations. The config uses the **{schedule}** schedule from "
     "η₀ = {lr:g}.", dict(epochs=40, steps=422, T=16880, schedule="cosine", lr=0.03),
     ["40", "422", "T = 16,880", "**cosine**", "η₀ = 0.03"]),
    ("{n} pixels are background in at least 95% of the training images (standardised value {value:.2f}), {outer} "
     "of them in the four outermost columns. Their weight rows have {rms:.2f} times the RMS of the other rows, "
     "and their mean row has a correlation of {together:.2f} with the bias $b$.",
     dict(n=62, value=-0.81, outer="98%", rms=0.43, together=-0.85), ["62", "-0.81", "98%", "0.43", "-0.85", "$b$"]),
]


@pytest.mark.parametrize("template, values, kept", SENTENCES)
def test_computed_sentences_come_in_chinese_with_the_same_values(template, values, kept, capsys, monkeypatch):
    monkeypatch.delenv("NN_LANG", raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    say(template, **values)
    assert capsys.readouterr().out == template.format(**values) + "\n"  # English: the template filled in
    monkeypatch.setenv("NN_LANG", "zh")
    say(template, **values)
    out = capsys.readouterr().out
    assert CJK.search(out) and ("，" in out or "：" in out)
    for value in kept:
        assert value in out


def test_a_sentence_built_from_translated_parts(chinese):
    """04's most frequent errors: class names, the pair template and the list separator all in Chinese."""
    pairs = [(105, "Shirt", "T-shirt/top"), (94, "T-shirt/top", "Shirt")]
    text = _("{share} of the {errors:,} errors stay inside a group. The most frequent: {pairs}.").format(
        share="91.0%", errors=981, pairs=_("; ").join(
            _("{true} taken for {predicted} ({n})").format(true=_(t), predicted=_(p), n=n) for n, t, p in pairs))
    assert "Shirt" not in text and "taken for" not in text
    for kept in ("91.0%", "981", "105", "94", _("Shirt"), _("T-shirt/top"), "；"):
        assert kept in text


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_no_code_cell_assigns_the_name_of_the_lookup(notebook):
    """The notebooks import _ (the translation lookup): a throwaway `x, _ = ...` would replace it for every later
    cell, and the next _("...") would fail with "'int' object is not callable"."""
    for i, cell in enumerate(translate.read_notebook(translate.ROOT / notebook)["cells"]):
        if cell["cell_type"] == "code":
            tree = ast.parse(translate.source(cell))
            stored = [node.lineno for node in ast.walk(tree)
                      if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store)]
            assert not stored, f"{notebook} cell {i}, line {stored[0]}: assigns _"
