"""README.zh-CN.md stays in step with README.md.

The Chinese README translates the prose but keeps every fenced code block (commands, Python,
TOML, text tables) byte for byte, so a command changed in one README and not the other fails
here. Also checked: the links at the top of both files, that every relative link and figure
of the Chinese README and the glossary exists, that the two READMEs have the same sections and
figures, and that each notebook's first markdown cell carries a Chinese summary.
"""
import difflib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"
GLOSSARY = ROOT / "docs" / "glossary.md"

CJK = re.compile(r"[\u4e00-\u9fff]")
# A fence opens with ``` or ~~~ at the start of a line and closes with the same run of characters.
FENCE = re.compile(r"^(?P<fence>```+|~~~+)[^\n]*\n.*?^(?P=fence)[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMG_TAG = re.compile(r"<img\b[^>]*\bsrc=[\"']([^\"']+)[\"']", re.I)
HEADING = re.compile(r"^(#{1,6})\s", re.M)
PENDING_ZH = "尚未写完"   # "not written yet": a section left untranslated
TOP_LINES = 8


def read(path):
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    return path.read_text(encoding="utf-8")


def code_blocks(text):
    """Every fenced code block, fences included, with the line it starts on."""
    return [(m.group(0), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def prose(text):
    """The text outside fenced blocks and inline code, where links are links."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def sections(text):
    """(heading line, body outside code blocks) for each heading, in order."""
    fences = [m.span() for m in FENCE.finditer(text)]
    marks = [m.start() for m in HEADING.finditer(text) if not any(a <= m.start() < b for a, b in fences)]
    out = []
    for start, end in zip(marks, marks[1:] + [len(text)]):
        heading, _, body = text[start:end].partition("\n")
        out.append((heading, FENCE.sub("", body)))
    return out


def relative_targets(path):
    """Relative link and image targets of a markdown file (anchors and URLs left out)."""
    text = prose(read(path))
    targets = LINK.findall(text) + IMG_TAG.findall(text)
    keep = []
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue
        keep.append(target.split("#", 1)[0])
    return keep


def images(path):
    text = prose(read(path))
    return [m for m in re.findall(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)", text)] + IMG_TAG.findall(text)


def test_every_code_block_of_readme_is_in_the_chinese_readme_unchanged_and_in_order():
    en, zh = code_blocks(read(README)), code_blocks(read(README_ZH))
    for i, ((want, en_line), got) in enumerate(zip(en, zh + [("", None)] * len(en))):
        got_text, zh_line = got
        if got_text != want:
            where = f"README.zh-CN.md line {zh_line}" if zh_line else "README.zh-CN.md (no such block)"
            diff = "\n".join(difflib.unified_diff(
                want.splitlines(), got_text.splitlines(), "README.md", "README.zh-CN.md", lineterm="", n=1))
            pytest.fail(f"code block {i + 1} of README.md (line {en_line}) differs from block {i + 1} of {where}; "
                        f"the code blocks must be identical, byte for byte, and in the same order. Copy "
                        f"README.md's block into README.zh-CN.md:\n{diff}")
    assert len(zh) == len(en), (
        f"README.zh-CN.md has {len(zh)} fenced code blocks, README.md {len(en)}: the Chinese README "
        f"has an extra block at line {zh[len(en)][1] if len(zh) > len(en) else '?'}")


def test_each_readme_links_the_other_at_the_top():
    en_top = "\n".join(read(README).splitlines()[:TOP_LINES])
    zh_top = "\n".join(read(README_ZH).splitlines()[:TOP_LINES])
    assert "](README.zh-CN.md)" in en_top, f"README.md's first {TOP_LINES} lines should link README.zh-CN.md"
    assert "](README.md)" in zh_top, f"README.zh-CN.md's first {TOP_LINES} lines should link README.md"
    assert "](docs/glossary.md)" in zh_top, f"README.zh-CN.md's first {TOP_LINES} lines should link docs/glossary.md"


@pytest.mark.parametrize("name", ["README.zh-CN.md", "docs/glossary.md", "README.md"])
def test_every_relative_link_and_figure_exists(name):
    path = ROOT / name
    targets = relative_targets(path)
    assert targets or name == "docs/glossary.md", f"{name}: no relative links found; is the link pattern broken?"
    missing = [t for t in targets if not (path.parent / t).exists()]
    assert not missing, f"{name} links files that do not exist (relative to {path.parent.relative_to(ROOT) or '.'}): {missing}"


def test_the_chinese_readme_shows_every_english_figure_in_its_chinese_form_where_there_is_one():
    # make run-zh draws the notebooks' figures with Chinese text into static/zh/; a screenshot has no twin.
    def chinese(figure):
        twin = figure.replace("static/", "static/zh/", 1)
        return twin if (ROOT / twin).exists() else figure

    wanted = [chinese(f) for f in images(README)]
    shown = images(README_ZH)
    assert [f for f in shown if f in wanted] == wanted, (
        f"README.zh-CN.md should show {wanted} in this order (static/zh/ where the Chinese figure exists); "
        f"it shows {shown}")
    english = [f for f in shown if f not in wanted and not f.startswith("static/zh/")]
    assert not english, f"README.zh-CN.md shows English figures that have a Chinese form or no English use: {english}"


def test_both_readmes_have_the_same_sections_and_every_written_section_is_translated():
    en, zh = sections(read(README)), sections(read(README_ZH))
    en_levels = [h.split()[0] for h, _ in en]
    zh_levels = [h.split()[0] for h, _ in zh]
    assert zh_levels == en_levels, (
        "README.zh-CN.md's headings do not match README.md's, level by level:\n"
        + "\n".join(f"  {a:<60} | {b}" for a, b in zip([h for h, _ in en] + [""] * len(zh),
                                                       [h for h, _ in zh] + [""] * len(en)) if a or b))
    for (en_head, en_body), (zh_head, zh_body) in zip(en, zh):
        assert CJK.search(zh_head + zh_body), f"README.zh-CN.md section {zh_head!r} has no Chinese text"
        assert PENDING_ZH not in zh_body, (f"README.zh-CN.md's {zh_head!r} still says it is not translated "
                                           f"({PENDING_ZH}): translate README.md's {en_head!r}")


def test_glossary_has_the_terms_of_the_issue():
    text = read(GLOSSARY)
    terms = ["前向传播", "反向传播", "梯度检验", "学习率衰减", "L2 正则化", "权重衰减", "早停", "验证集",
             "超参数搜索", "剪枝", "im2col", "最大池化", "dead ReLU", "饱和", "混淆矩阵", "交叉熵", "softmax",
             "小批量", "epoch", "动量", "Nesterov", "Adam", "余弦", "He 初始化", "Glorot", "暂退法",
             "检查点", "数据增广", "标准化", "过拟合", "学习率范围测试", "更新量与权重之比", "特征图"]
    missing = [t for t in terms if t not in text]
    assert not missing, f"docs/glossary.md lacks the terms {missing}"


@pytest.mark.parametrize("notebook", sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
def test_each_notebook_opens_with_a_chinese_summary(notebook):
    cells = json.loads((ROOT / "notebooks" / notebook).read_text(encoding="utf-8"))["cells"]
    first = next((c for c in cells if c["cell_type"] == "markdown"), None)
    assert first is not None, f"notebooks/{notebook} has no markdown cell"
    text = "".join(first["source"])
    if not CJK.search(text):
        pytest.fail(f"notebooks/{notebook}: its first markdown cell has no Chinese; it should carry a two-line "
                    f"Chinese summary of what the notebook teaches under the English title (issue 18). "
                    f"It starts: {text[:70]!r}")
