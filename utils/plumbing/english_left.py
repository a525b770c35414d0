"""What a Chinese reader would still meet in English: a check of the Chinese edition.

    python -m utils.plumbing.english_left     # every such line; exit 1 if there is one (make zh-english)

It lists, for the Chinese notebooks (notebooks/zh/) and documents (notebooks/solutions/zh/), every
line of markdown and of the stored outputs (printed lines, computed sentences, tables as the reader
sees them) that has English words and no Chinese character, leaving out code, math, links and
indented code; and, in utils/ and the English notebooks' code, every figure text (title, axis label,
legend entry, annotation) written as a bare literal instead of through label(), which a Chinese
figure would draw in English. Figures themselves are pixels: tests/figures checks their text artists.
"""
import ast
import html
import re
import sys

from utils.plumbing.translate import (
    CJK,
    TEXT_IN_MATH,
    code_sources,
    edition_path,
    english_sources,
    read_notebook,
    shown,
    source,
)

WIDGET = "application/vnd.jupyter.widget-view+json"


def english_lines(notebook):
    """[(cell index, line)] of notebooks/zh/<name> that have English words and no Chinese: markdown outside
    code, math and links, and the cells' text outputs (printed lines, computed sentences, tables as text)."""
    found = []
    target = edition_path(notebook)
    cells = ([{"cell_type": "markdown", "source": target.read_text(encoding="utf-8")}]
             if notebook.suffix == ".md" else read_notebook(target)["cells"])
    for i, cell in enumerate(cells):
        texts = [source(cell)] if cell.get("cell_type") == "markdown" else []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data or WIDGET in data:
                continue  # a figure (its words are pixels) or a live widget: their text/plain is not shown
            if "text/html" in data and "text/markdown" not in data:  # a table: what the reader sees
                table = re.sub(r"<style.*?</style>", "", source({"source": data["text/html"]}), flags=re.S)
                texts.append(html.unescape(re.sub(r"<[^>]+>", " ", table)))
                continue
            texts.append(source({"source": out.get("text", data.get("text/markdown", data.get("text/plain", "")))}))
        for text in texts:
            for words in TEXT_IN_MATH.findall(text):  # a formula's words: \text{position is the maximum}
                words = words[len("\\text{"):-1].replace("\\_", "_")  # (one word, W_\text{flat}, names a variable)
                if len(WORD.findall(words)) > 1 and has_english_word(words) and not CJK.search(words):
                    found.append((i, f"\\text{{{words}}}"))
            for line in re.sub(r"\$\$.*?\$\$", "", text, flags=re.S).splitlines():  # display math is not prose
                prose = re.sub(r"`[^`]*`|\$[^$]*\$|\]\([^)]*\)|https?://\S+", "", line)
                if not line.startswith("    ") and has_english_word(prose) and not CJK.search(prose):
                    found.append((i, line.strip()))
    return found


# Names a Chinese text keeps as they are: the layers, optimisers and networks of the course, libraries.
NAMES = {"MLP", "LeNet", "ReLU", "LeakyReLU", "Linear", "Dropout", "Sequential", "Conv2D", "MaxPool2D", "Flatten",
         "Sigmoid", "Tanh", "SoftmaxCrossEntropy", "Adam", "SGD", "Nesterov", "NumPy", "PyTorch", "OpenBLAS",
         "Optuna", "Jupyter", "JupyterLab", "Fashion", "MNIST", "CIFAR", "BLAS", "GEMM", "softmax", "sigmoid",
         "tanh", "logits", "im2col", "col2im", "true", "false", "null", "True", "False", "None"}
WORD = re.compile(r"(?<![\w.\\'\"])[A-Za-z]{3,}(?![\w(=\"'])")  # not x.attr, \command, name( or key=, "key"


def has_english_word(text):
    """True if text has an English word that is not code: identifiers (snake_case, CamelCase, with digits),
    calls and keywords (name(, key=), attributes, LaTeX commands, JSON keys and NAMES are not words here."""
    return any(w not in NAMES and not re.search(r"[a-z][A-Z]", w) for w in WORD.findall(text))


# Matplotlib calls whose text a figure shows: (name, positions of text arguments, text keywords).
FIGURE_TEXT_CALLS = {"set_title": ((0,), ()), "set_xlabel": ((0,), ()), "set_ylabel": ((0,), ()),
                     "suptitle": ((0,), ()), "text": ((2,), ()), "annotate": ((0,), ()), "figtext": ((2,), ()),
                     "set": ((), ("title", "xlabel", "ylabel")), "legend": ((), ("title",))}
TEXT_KEYWORDS = ("title", "suptitle", "xlabel", "ylabel")  # of any call: plot_filters(..., suptitle="...")
# The drawing calls whose label= is a legend entry: plot(x, y, label="train").
LEGEND_CALLS = {"plot", "bar", "barh", "scatter", "hist", "step", "stairs", "errorbar", "fill_between", "axhline",
                "axvline", "semilogy", "semilogx", "loglog", "stem"}
PROSE_WORD = re.compile(r"(?<![\w.])[A-Za-z]{3,}(?![\w.])")  # a word, not part of log10, l2_lambda or file.ext


def _english_literal(node):
    """The English of a str literal or f-string node with a word of 3+ letters, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr):
        text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    else:
        return None
    return text if PROSE_WORD.search(text) and not CJK.search(text) else None


def figure_text_in_code():
    """[(where, English)] of figure text written as a bare literal (not through label()) in utils/ and the
    English notebooks' code: a title, axis label, legend entry or annotation the Chinese edition would
    draw in English."""
    found = []
    for where, text in code_sources():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            positions, keywords = FIGURE_TEXT_CALLS.get(name, ((), ()))
            args = [node.args[i] for i in positions if i < len(node.args)]
            args += [k.value for k in node.keywords if k.arg in keywords or k.arg in TEXT_KEYWORDS
                     or (k.arg == "label" and name in LEGEND_CALLS)]
            found += [(f"{where}:{arg.lineno}", english) for arg in args
                      if (english := _english_literal(arg)) is not None]
    return found


def main(argv=None):
    if argv if argv is not None else sys.argv[1:]:
        print("usage: python -m utils.plumbing.english_left   (no arguments)", file=sys.stderr)
        return 2
    found = 0
    for path in english_sources():
        for index, line in english_lines(path):
            print(f"{shown(edition_path(path))} cell {index}: {line[:150]}")
            found += 1
    for where, english in figure_text_in_code():
        print(f"{where}: figure text not passed through label(): {english[:120]!r}")
        found += 1
    print(f"{found} lines in English" if found else "no English left outside code, identifiers and names")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
