"""The Chinese notebooks use the terms of docs/glossary.md.

The glossary's tables have three columns, English | 中文 | 说明. For every term whose English appears in
an English markdown cell (case-insensitive, whole words, plural allowed), the cell's Chinese translation
(locale/zh_CN/notebooks/*.po) must use the glossary's Chinese: the main term or one of the alternatives
in its full-width brackets. The table "不用的译法" lists wrong or rejected variants; none may appear in a
Chinese markdown cell.

English column: variants separated by " / " ("hidden layer / hidden unit") or one in parentheses
("multilayer perceptron (MLP)"); `code` spans are not English words. Chinese column: "主译名（别名、别名）";
rows with as many " / "-separated parts as the English are paired part by part ("权重 / 偏置").
"""
import re
from pathlib import Path

import pytest

from utils.plumbing import po, translate

GLOSSARY = Path(__file__).resolve().parents[2] / "docs" / "glossary.md"
REJECTED_HEADING = "不用的译法"

# Terms not checked mechanically, each with its reason. The key is the glossary's English column.
NOT_CHECKED = {
    # The Chinese term is the English name itself (kept in Chinese text, as d2l-zh does): nothing to check.
    "ReLU": "the Chinese keeps the name ReLU",
    "Leaky ReLU": "the Chinese keeps the name",
    "sigmoid": "the Chinese keeps the name sigmoid",
    "tanh": "the Chinese keeps the name tanh",
    "softmax": "the Chinese keeps the name softmax",
    "logits": "d2l-zh's 未规范化的预测 is a definition, not a word to put in every sentence; logits stays",
    "Adam": "the Chinese keeps the name Adam",
    "AdamW": "the Chinese keeps the name",
    "Nesterov momentum": "the Chinese keeps the name Nesterov",
    "LeNet-5": "a name",
    "im2col / col2im": "function names",
    "GEMM / BLAS": "library names",
    "nbval": "a tool's name",
    "TPE (Bayesian search)": "a name; no notebook uses it",
    "doctor (`diagnose`)": "the English 'doctor' also names the function `doctor` and the command",
    "`Sequential`": "a class name, kept in code spans",
    "He initialisation": "the English 'He' is also the pronoun",
    # English words too common to carry the term's sense in every sentence.
    "scaling": "'scaling' also means multiplying by a factor (of a learning rate, a gradient)",
    "channel": "rarely used outside code; 'channel' also names a conda channel",
    "activation": "'activation(s)' is also the English of 激活函数 and 激活值 alike; the row explains, not checks",
    "template": "'template' also names a string template",
    "notebook": "'notebook' is also the file (笔记本 or 本笔记本, both ok), and 'notebook 03' is 03 号笔记本 or 笔记本 03",
    "exercise / check": "'check' is an everyday verb (check that, the gradient check...)",
    "iteration / step": "'step' is an everyday word (a step of the derivation, step schedule)",
    "velocity": "only in formulas",
    "ranking": "'rank' is an everyday word",
    "worker": "only in the search's options",
    "resume": "'resume' is an everyday verb",
    "seed": "'seed' appears mostly as the config key `seed`",
    "best weights": "'best weights' is said many ways (最佳权重, 最好的权重, 验证集上最好的那一轮的权重)",
    "weight / bias": "'weight(s)' is in almost every cell; 'bias' also means a statistical bias (偏差)",
    "parameter vs. hyperparameter": "'parameter' also means a function's parameter (参数 either way)",
    "widget / slider": "the names of ipywidgets classes",
    "playground": "the notebook's name",
    "experiment config": "said many ways (实验配置, 配置文件, 配置)",
    "benchmark": "'benchmark' is also the folder bench/ and make bench",
    "accuracy": "'accuracy' is in almost every cell; 准确率 everywhere is checked by the rejected variants",
    "trial": "'trial' also appears as Optuna's class name in text",
    "gradient": "in almost every cell; the rejected variants check its wrong translations",
    "heatmap": "'heatmap' is also the function name `heatmap`",
    "dead unit / flat activation": "the doctor's wording; dead ReLU is checked",
}


def cells(text):
    """Split a table row '| a | b | c |' into its cells (no '|' inside cells in the glossary)."""
    return [c.strip() for c in text.strip().strip("|").split("|")]


def parse_glossary(text):
    """{"terms": [(english, chinese, note)], "rejected": [(wrong, right, note)]} from the glossary's tables."""
    terms, rejected, section = [], [], None
    for line in text.splitlines():
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif line.startswith("|") and not re.match(r"^\|\s*-", line):
            row = cells(line)
            if len(row) != 3 or row[0] in ("English", "不用"):
                continue
            (rejected if section == REJECTED_HEADING else terms).append(tuple(row))
    return {"terms": terms, "rejected": rejected}


def english_variants(english):
    """'multilayer perceptron (MLP)' -> ['multilayer perceptron', 'MLP']; 'a / b' -> ['a', 'b']; code dropped."""
    out = []
    for part in english.split(" / "):
        inner = re.findall(r"\(([^)]*)\)", part)
        outer = re.sub(r"\s*\([^)]*\)\s*", " ", part)
        for text in [outer, *inner]:
            text = re.sub(r"`[^`]*`", "", text).strip()
            if text and re.search(r"[A-Za-z]", text):
                out.append(text)
    return out


def chinese_forms(chinese):
    """'最大汇聚（最大池化）' -> ['最大汇聚', '最大池化']; alternatives separated by 、 or ，."""
    main = re.sub(r"（[^）]*）", "", chinese).strip()
    alternatives = [a.strip() for inner in re.findall(r"（([^）]*)）", chinese) for a in re.split(r"[、，]", inner)]
    return [f for f in [main, *alternatives] if f]


def accepted(english, chinese):
    """[(English variant, [accepted Chinese forms])] of one glossary row."""
    en_parts, zh_parts = english.split(" / "), chinese.split(" / ")
    if len(en_parts) == len(zh_parts) > 1:
        return [(variant, chinese_forms(zh)) for en, zh in zip(en_parts, zh_parts) for variant in english_variants(en)]
    forms = [f for zh in zh_parts for f in chinese_forms(zh)]
    return [(variant, forms) for variant in english_variants(english)]


def english_pattern(term):
    """A term as a regex: whole words, any case, plural allowed, -ise/-ize, hyphen or space or nothing between words."""
    words = re.split(r"[\s-]+", term)
    parts = [re.escape(w).replace("is", "i[sz]") if w.lower().endswith(("isation", "ise", "iser")) else re.escape(w)
             for w in words]
    return re.compile(r"(?<![\w`])" + r"[\s-]*".join(parts) + r"(?:s|es)?(?![\w`])", re.I)


def prose(english):
    """An English cell without its code spans, math, links' targets and HTML tags."""
    text = re.sub(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$", " ", english, flags=re.S)
    return re.sub(r"\]\([^)]*\)|<[^>]+>|https?://\S+", " ", text)


def spaced(text):
    """Chinese with spaces dropped, so 'L2 正则化' matches 'L2正则化'."""
    return re.sub(r"\s+", "", text)


def misuses(glossary, pairs):
    """[(msgctxt, English term, accepted forms)] where a cell's English uses a term and its Chinese none of its forms.
    pairs: [(msgctxt, English, Chinese)]."""
    found = []
    for english_col, chinese_col, _ in glossary["terms"]:
        if english_col in NOT_CHECKED:
            continue
        for variant, forms in accepted(english_col, chinese_col):
            pattern = english_pattern(variant)
            for context, english, chinese in pairs:
                if pattern.search(prose(english)) and not any(spaced(f) in spaced(chinese) for f in forms):
                    found.append((context, variant, forms))
    return found


def rejected_uses(glossary, pairs):
    """[(msgctxt, wrong variant, the glossary's term)] found in the Chinese of pairs."""
    return [(context, wrong, right) for wrong, right, _ in glossary["rejected"]
            for context, _, chinese in pairs if spaced(wrong) in spaced(chinese)]


def catalog_pairs():
    """[(msgctxt, English, Chinese)] of every markdown cell of every English notebook."""
    out = []
    for notebook in translate.english_notebooks():
        entries = {e.context: e for e in po.read(translate.catalog_path(notebook)) if e.msgid and not e.obsolete}
        for context, english in translate.markdown_cells(notebook):
            entry = entries.get(context)
            if entry is not None and entry.msgstr:
                out.append((context, english, entry.msgstr))
    return out


@pytest.fixture(scope="module")
def glossary():
    return parse_glossary(GLOSSARY.read_text(encoding="utf-8"))


# The parser and the checks, on small inputs: they must be able to fail.

SAMPLE = """# 术语表

## 训练

| English | 中文 | 说明 |
| --- | --- | --- |
| max pooling | 最大汇聚（最大池化） | 取每个窗口的最大值。 |
| multilayer perceptron (MLP) | 多层感知机 | 全连接层的堆叠。 |
| hidden layer / hidden unit | 隐藏层 / 隐藏单元 | 输入与输出之间的层和单元。 |
| learning-rate decay | 学习率衰减 | 逐渐减小学习率。 |

## 不用的译法

| 不用 | 改用 | 说明 |
| --- | --- | --- |
| 隐含层 | 隐藏层 | d2l-zh 的译法。 |
"""


def test_the_glossary_tables_are_parsed_with_variants_and_alternatives():
    g = parse_glossary(SAMPLE)
    assert [row[0] for row in g["terms"]] == ["max pooling", "multilayer perceptron (MLP)",
                                             "hidden layer / hidden unit", "learning-rate decay"]
    assert g["rejected"] == [("隐含层", "隐藏层", "d2l-zh 的译法。")]
    assert accepted(*g["terms"][0][:2]) == [("max pooling", ["最大汇聚", "最大池化"])]
    assert accepted(*g["terms"][1][:2]) == [("multilayer perceptron", ["多层感知机"]), ("MLP", ["多层感知机"])]
    assert accepted(*g["terms"][2][:2]) == [("hidden layer", ["隐藏层"]), ("hidden unit", ["隐藏单元"])]


def test_a_cell_with_a_wrong_term_fails_and_one_with_the_glossary_term_or_an_alternative_passes():
    g = parse_glossary(SAMPLE)
    pairs = [("nb/good", "Max pooling halves the width.", "最大汇聚把宽度减半。"),
             ("nb/alternative", "The max-pooling layer.", "最大池化层。"),
             ("nb/wrong", "Two max poolings follow.", "后面跟着两个最大值采样。"),
             ("nb/plural", "An MLP's hidden units and hidden layers.", "多层感知机的隐藏单元和隐藏层。"),
             ("nb/code", "Set `max_pooling` and `lr_decay`.", "设置 `max_pooling` 和 `lr_decay`。"),
             ("nb/decay", "Learning rate decay helps.", "学习速率下降有帮助。")]
    assert [(c, t) for c, t, _ in misuses(g, pairs)] == [("nb/wrong", "max pooling"),
                                                         ("nb/decay", "learning-rate decay")]
    assert rejected_uses(g, [("nb/x", "The hidden layer.", "这个隐含层。")]) == [("nb/x", "隐含层", "隐藏层")]
    assert rejected_uses(g, pairs) == []


def test_every_term_left_unchecked_is_in_the_glossary(glossary):
    names = {row[0] for row in glossary["terms"]}
    assert not set(NOT_CHECKED) - names, f"NOT_CHECKED names terms the glossary lacks: {set(NOT_CHECKED) - names}"


def test_the_glossary_has_terms_and_rejected_variants(glossary):
    assert len(glossary["terms"]) > 80 and len(glossary["rejected"]) >= 10
    for english, chinese, note in glossary["terms"]:
        assert english_variants(english) or english.startswith("`"), f"no English words in the row {english!r}"
        assert chinese_forms(chinese) and note, f"the row {english!r} lacks its Chinese or its explanation"


# The real catalogs.

def test_the_chinese_notebooks_use_the_glossarys_terms(glossary):
    found = misuses(glossary, catalog_pairs())
    assert not found, (f"{len(found)} Chinese markdown cells do not use the glossary's term for English in their "
                       f"cell (fix the msgstr in locale/zh_CN/notebooks/, or the glossary):\n"
                       + "\n".join(f"  {c}: {t!r} -> {'/'.join(f)}" for c, t, f in found))


def test_the_chinese_notebooks_use_no_rejected_variant(glossary):
    found = rejected_uses(glossary, catalog_pairs())
    assert not found, ("Chinese markdown cells use variants docs/glossary.md rejects:\n"
                       + "\n".join(f"  {c}: {w} (use {r})" for c, w, r in found))
