"""The Chinese edition of the notebooks, written from the English ones and a translation catalog each.

The English notebooks are the source. Each markdown cell has one entry in a gettext catalog,
locale/zh_CN/notebooks/<notebook>.po, keyed by msgctxt "<notebook>/<cell id>", with the cell's
English text as msgid and its Chinese as msgstr. Editing an English cell changes its msgid, so
the old translation no longer answers it: `update` keeps it, marked fuzzy, with the English it
was made from (#| msgid), for the translator to compare; `check` (and the tests) fail until
someone translates the new text and removes the mark.

    python -m utils.plumbing.translate update   # catalogs follow the English notebooks and code (make zh)
    python -m utils.plumbing.translate build    # notebooks/zh/ from the English + catalogs (make zh)
    python -m utils.plumbing.translate check    # list what is missing or out of date; exit 1 if any

The Chinese notebook has the English code cells, unchanged but for LANGUAGE_LINE put before the
first one, which makes the code speak Chinese and draw into static/zh/ (utils.plumbing.language).
A code cell whose source did not change keeps the outputs the last `make run-zh` stored in
notebooks/zh/, so rebuilding the text does not throw away the Chinese figures.

`update` also collects the English the code passes to _(), gettext(), label(), labels() and say() (a literal
first argument, in utils/ and the English notebooks) and adds what messages.po lacks, untranslated.
"""
import ast
import copy
import json
import re
import sys
from datetime import datetime, timezone

from utils.plumbing import po
from utils.plumbing.files import atomic_write
from utils.plumbing.language import LOCALE_DIR, LOCALES, catalog_paths, read_catalog, translations
from utils.plumbing.language import catalog_path as messages_path
from utils.plumbing.paths import ROOT

NOTEBOOK_DIR = ROOT / "notebooks"
LANG = "zh"
EDITION_DIR = NOTEBOOK_DIR / LANG
CATALOG_DIR = LOCALE_DIR / LOCALES[LANG] / "notebooks"
LANGUAGE_LINE = ("from utils.plumbing.language import chinese_edition\n\n"
                 "chinese_edition()  # 中文版：输出和图中文字都用中文，图存入 static/zh/（英文版没有这两行）\n\n")
# The calls whose first argument is English text to translate (a literal, or a list of literals for labels).
TRANSLATED_CALLS = ("_", "gettext", "label", "labels", "say")
# What a translation must carry over unchanged: $math$, $$display math$$ and `code`.
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")  # Chinese characters and punctuation
SPANS = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$|`[^`\n]+`", re.S)


# Markdown files translated the same way, a block (paragraph, heading, list) per entry; their Chinese is
# written beside them, in a zh/ folder (notebooks/solutions/zh/06_answers.md).
DOCUMENTS = (NOTEBOOK_DIR / "solutions" / "06_answers.md",)
QUESTION = re.compile(r"^\*\*Question (\d+)\.\*\*")


def english_notebooks():
    """notebooks/NN_*.ipynb, the English edition, in order."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def english_sources():
    """The English notebooks, then the English markdown documents: everything the Chinese edition is made from."""
    return english_notebooks() + [d for d in DOCUMENTS if d.is_file()]


def edition_path(path):
    """Where the Chinese of an English notebook or document goes: notebooks/zh/..., or a zh/ folder beside it."""
    return EDITION_DIR / path.name if path.suffix == ".ipynb" else path.parent / LANG / path.name


def document_blocks(path):
    """[(msgctxt, English block)] of a markdown file: its blank-line separated blocks, keyed by question
    number ("06_answers/q3"), by heading ("06_answers/h-B. Training") or by position ("06_answers/p2")."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} cannot be read as UTF-8 text: {e}") from e
    out = []
    for i, block in enumerate(b.strip("\n") for b in re.split(r"\n\s*\n", text) if b.strip()):
        question = QUESTION.match(block)
        key = (f"q{question.group(1)}" if question else f"h-{block.lstrip('#').strip()}" if block.startswith("#")
               else f"p{i}")
        out.append((f"{path.stem}/{key}", block))
    return out


def read_notebook(path):
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} cannot be read as a notebook (JSON, UTF-8): {e}") from e
    if not isinstance(nb.get("cells"), list):
        raise ValueError(f"{path} is not a Jupyter notebook: expected a JSON object with a list of cells")
    return nb


def source(cell):
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def shown(path):
    """path relative to the project, for messages (absolute if outside it)."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def catalog_path(notebook):
    """locale/zh_CN/notebooks/01_data_preparation.po for notebooks/01_data_preparation.ipynb."""
    return CATALOG_DIR / f"{notebook.stem}.po"


def markdown_cells(notebook):
    """[(msgctxt, English text)] of the notebook's markdown cells (of a markdown file's blocks), in order."""
    if notebook.suffix == ".md":
        return document_blocks(notebook)
    out = []
    for i, cell in enumerate(read_notebook(notebook)["cells"]):
        if cell.get("cell_type") == "markdown":
            if not cell.get("id"):
                raise ValueError(f"{notebook}: markdown cell {i} has no id; the catalog keys entries by cell id "
                                 f"(nbformat 4.5). Open and save the notebook in JupyterLab to give it ids")
            out.append((f"{notebook.stem}/{cell['id']}", source(cell)))
    return out


def load(notebook):
    """The notebook's catalog as [header, entries...], or a new one with only its header."""
    path = catalog_path(notebook)
    if path.is_file():
        return read_catalog(path)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M+0000")
    header = (f"Project-Id-Version: nn-from-scratch\nPOT-Creation-Date: {now}\nLanguage: {LOCALES[LANG]}\n"
              "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n")
    return [po.Entry("", header, comments=[f"The Chinese of notebooks/{notebook.name}, one entry per markdown cell."])]


def save(entries, path):
    po.write(path, entries)


def update(notebook):
    """Make the catalog follow the English notebook; returns {"new": n, "fuzzy": n, "obsolete": n}.

    A changed English cell keeps its old translation marked fuzzy, with the old English as the
    previous msgid. A cell whose id changed but whose English did not keeps its translation. The
    entries of deleted cells move to the end of the file as obsolete (#~), not lost.
    """
    old = load(notebook)
    header = [e for e in old if not e.msgid and e.context is None][:1]
    live = {e.context: e for e in old if e.msgid and not e.obsolete}
    by_english = {e.msgid: e for e in old if e.msgid and e.msgstr and not e.fuzzy}
    entries, counts = [], {"new": 0, "fuzzy": 0, "obsolete": 0}
    for context, english in markdown_cells(notebook):
        before = live.pop(context, None)
        if before is not None and before.msgid == english and not before.obsolete:
            entries.append(before)
        elif before is not None:
            previous = before.previous if before.fuzzy and before.previous is not None else before.msgid
            entries.append(po.Entry(english, before.msgstr, context, {"fuzzy"}, previous))
            counts["fuzzy"] += 1
        elif english in by_english:
            entries.append(po.Entry(english, by_english[english].msgstr, context))
        else:
            entries.append(po.Entry(english, "", context))
            counts["new"] += 1
    kept = [e for e in old if e.obsolete and e.msgstr]  # obsolete before this update
    gone = [e for e in live.values() if e.msgstr]       # obsolete from now on (untranslated ones just go)
    for e in gone:
        e.obsolete = True
    counts["obsolete"] = len(live)
    save(header + entries + gone + kept, catalog_path(notebook))
    return counts


def problems(notebook):
    """[(msgctxt, what is wrong)] for the notebook's markdown cells: no entry, no translation, fuzzy or
    stale entries, and translations that changed a $math$ or `code` span of the English."""
    path = catalog_path(notebook)
    entries = {e.context: e for e in read_catalog(path) if e.msgid and not e.obsolete} if path.is_file() else {}
    found = []
    for context, english in markdown_cells(notebook):
        m = entries.get(context)
        if m is None:
            found.append((context, f"no entry in {shown(path)} (run make zh, then translate it)"))
        elif m.msgid != english:
            found.append((context, "the English cell changed since the catalog was updated (run make zh)"))
        elif not m.msgstr:
            found.append((context, "not translated yet"))
        elif m.fuzzy:
            found.append((context, "fuzzy: the English changed since it was translated; compare with #| msgid"))
        elif not CJK.search(m.msgstr):
            found.append((context, "the translation has no Chinese character: still the English?"))
        elif any(span_difference(SPANS.findall(english), SPANS.findall(m.msgstr))):
            missing, extra = span_difference(SPANS.findall(english), SPANS.findall(m.msgstr))
            found.append((context, "the translation changed the math or code spans of the English: " + "; ".join(
                part for part in (("missing " + ", ".join(missing)) if missing else "",
                                  ("extra " + ", ".join(extra)) if extra else "") if part)))
    return found


def span_difference(english, chinese):
    """(missing, extra): the spans a translation lost and added, counting repeats. A program message quoted
    as code (`not implemented yet: write ..., then rerun this cell`) may be quoted in its Chinese form, as
    the code prints it in the Chinese edition: such a pair is neither missing nor extra. So may the words
    of a formula (\\text{...}): the math around them must stay the same."""
    missing, extra = list(english), []
    for span in chinese:
        if span in missing:
            missing.remove(span)
        else:
            extra.append(span)
    for span in list(extra):
        twin = next((m for m in missing if is_quoted_message(m, span) or same_math(m, span)), None)
        if twin is not None:
            missing.remove(twin)
            extra.remove(span)
    return missing, extra


TEXT_IN_MATH = re.compile(r"\\text\{[^{}]*\}")


def same_math(english, chinese):
    """True if two $math$ spans differ at most in the words of their \\text{...} parts."""
    return english.startswith("$") and TEXT_IN_MATH.sub("", english) == TEXT_IN_MATH.sub("", chinese)


def _message_pattern(template):
    """A regex for a message template: its {fields} match any text (a quote may show them as '...')."""
    return re.compile("(.+?)".join(re.escape(part) for part in re.split(r"\{\w*(?:[:!][^{}]*)?\}", template)))


def is_quoted_message(english, chinese):
    """True if `english` and `chinese` (code spans) quote one program message of LC_MESSAGES in each language."""
    if not (english.startswith("`") and chinese.startswith("`")):
        return False
    english, chinese = english.strip("`"), chinese.strip("`")
    for path in catalog_paths(LANG):
        for msgid, msgstr in translations(path).items():
            if _message_pattern(msgid).fullmatch(english) and _message_pattern(msgstr).fullmatch(chinese):
                return True
    return False


def translated(notebook):
    """{msgctxt: Chinese} of the entries that are up to date (problems lists the others)."""
    path = catalog_path(notebook)
    if not path.is_file():
        return {}
    bad = {context for context, _ in problems(notebook)}
    return {e.context: e.msgstr for e in read_catalog(path) if e.msgid and not e.obsolete and e.context not in bad}


def build_document(path):
    """Write the Chinese of a markdown document (zh/<name> beside it); returns the blocks left in English."""
    chinese = translated(path)
    blocks = [(context, chinese.get(context, english)) for context, english in document_blocks(path)]
    target = edition_path(path)
    target.parent.mkdir(exist_ok=True)
    with atomic_write(target, "wb") as f:
        f.write(("\n\n".join(text for _, text in blocks) + "\n").encode("utf-8"))
    return [context for context, _ in blocks if context not in chinese]


def build(notebook):
    """Write notebooks/zh/<name>: English code cells, Chinese markdown; returns the contexts left in English."""
    if notebook.suffix == ".md":
        return build_document(notebook)
    nb = read_notebook(notebook)
    target = EDITION_DIR / notebook.name
    previous = read_notebook(target) if target.is_file() else {"cells": [], "metadata": {}}
    stored = {c.get("id"): c for c in previous["cells"] if c.get("cell_type") == "code"}
    chinese = translated(notebook)
    left_in_english = []
    out = copy.deepcopy(nb)
    out["metadata"].pop("widgets", None)  # the English outputs' widget state; the stored Chinese one is kept below
    code = [c for c in out["cells"] if c.get("cell_type") == "code"]
    if not code:
        raise ValueError(f"{notebook} has no code cell to set the language in")
    code[0]["source"] = LANGUAGE_LINE + source(code[0])
    for cell in out["cells"]:
        if cell.get("cell_type") == "markdown":
            context = f"{notebook.stem}/{cell['id']}"
            if context in chinese:
                cell["source"] = chinese[context]
            else:
                cell["source"] = source(cell)
                left_in_english.append(context)
        elif cell.get("cell_type") == "code":
            cell["source"] = source(cell)
            before = stored.get(cell.get("id"))
            if before is not None and source(before) == cell["source"]:
                cell["outputs"], cell["execution_count"] = before.get("outputs", []), before.get("execution_count")
            else:
                cell["outputs"], cell["execution_count"] = [], None
    if "widgets" in previous["metadata"]:
        out["metadata"]["widgets"] = previous["metadata"]["widgets"]
    text = json.dumps(out, indent=1, ensure_ascii=False, sort_keys=True) + "\n"  # as nbformat writes it
    with atomic_write(target, "wb") as f:
        f.write(text.encode("utf-8"))
    return left_in_english


def code_sources():
    """[(where, Python source)]: every module of utils/, every code cell of the English notebooks."""
    out = [(shown(p), p.read_text(encoding="utf-8")) for p in sorted((ROOT / "utils").rglob("*.py"))]
    for nb in english_notebooks():
        for i, cell in enumerate(read_notebook(nb)["cells"]):
            if cell.get("cell_type") == "code":
                lines = [line for line in source(cell).splitlines() if not line.lstrip().startswith(("%", "!"))]
                out.append((f"{shown(nb)} cell {i}", "\n".join(lines)))
    return out


def messages_in_code():
    """{English: [where, ...]} of the literal texts passed to _(), label(), labels() and say()."""
    found = {}
    for where, text in code_sources():
        try:
            tree = ast.parse(text)
        except SyntaxError as e:
            raise ValueError(f"{where} is not valid Python: {e}") from e
        texts = []
        for node in ast.walk(tree):
            func = getattr(node, "func", None)
            name = getattr(func, "id", None) or getattr(func, "attr", None)
            if isinstance(node, ast.Call) and name in TRANSLATED_CALLS and node.args:
                first = node.args[0]
                items = first.elts if isinstance(first, (ast.List, ast.Tuple)) else [first]
                texts += [(item.lineno, item.col_offset, item.value) for item in items
                          if isinstance(item, ast.Constant) and isinstance(item.value, str) and item.value.strip()]
        for line, _, text in sorted(texts):  # in the order they appear, not ast.walk's
            found.setdefault(text, []).append(f"{where}:{line}")
    return found


def update_messages():
    """Add each text the code passes to _() and the like, and no catalog of LC_MESSAGES has, to messages.po
    as an entry to translate.

    Entries the code does not use (yet) are kept: a translation may be written before its call site.
    Returns the number added."""
    path = messages_path(LANG)
    entries = read_catalog(path)
    known = {e.msgid for other in sorted(path.parent.glob("*.po")) for e in read_catalog(other) if not e.obsolete}
    new = [po.Entry(text, comments=[f"used in {places[0]}"]) for text, places in messages_in_code().items()
           if text not in known]
    if new:
        po.write(path, entries + new)
    return len(new)


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 1 or args[0] not in ("update", "build", "check"):
        print("usage: python -m utils.plumbing.translate {update|build|check} [notebooks/NN_name.ipynb ...]",
              file=sys.stderr)
        return 2
    notebooks = [ROOT / a for a in args[1:]] or english_sources()  # ROOT / "/abs/path" is /abs/path
    missing = [str(n) for n in notebooks if not n.is_file()]
    if missing:
        print(f"no such notebook: {', '.join(missing)} (expected English notebooks, e.g. notebooks/01_*.ipynb, "
              f"or {', '.join(str(shown(d)) for d in DOCUMENTS)})",
              file=sys.stderr)
        return 2
    failed = 0
    if args[0] == "update" and not args[1:]:
        print(f"{shown(messages_path(LANG))}: {update_messages()} new messages to translate")
    for notebook in notebooks:
        if args[0] == "update":
            counts = update(notebook)
            print(f"{shown(catalog_path(notebook))}: {counts['new']} new, {counts['fuzzy']} changed "
                  f"(fuzzy), {counts['obsolete']} obsolete")
        elif args[0] == "build":
            left = build(notebook)
            print(f"{shown(edition_path(notebook))}" + (f": {len(left)} markdown cells left in English (make zh-check "
                                                 f"lists them)" if left else ""))
        else:
            found = problems(notebook)
            failed += len(found)
            for context, what in found:
                print(f"{context}: {what}")
    if args[0] == "check":
        print(f"{failed} markdown cells need a translation" if failed else "every markdown cell is translated")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
