"""The reader's language: English, or Chinese for the course's Chinese edition.

    from utils.plumbing.language import _
    print(_("validation accuracy"))   # "验证准确率" when the language is Chinese

The language is Chinese when NN_LANG says so (NN_LANG=zh; the Chinese notebooks set it in their
first cell), or, without NN_LANG, when the locale does (LANG=zh_CN.UTF-8); English otherwise.
Like paths.py, it is read when a message is looked up, not once at import.

The words live in gettext catalogs, locale/zh_CN/LC_MESSAGES/*.po, one per part of the code
(messages.po for the notebooks' sentences, and e.g. checks.po, doctor.po, figures.po, commands.po),
read together; an entry's msgid is the English text: a message with no translation yet, or one
marked fuzzy (its English changed since it was translated), is shown in English, as gettext does.
"""
import os
import unicodedata

from utils.plumbing import po
from utils.plumbing.paths import ROOT

LANGUAGES = ("en", "zh")
LOCALE_DIR = ROOT / "locale"
LOCALES = {"zh": "zh_CN"}  # language -> the folder of its catalogs under locale/
MESSAGES = "messages.po"
_cache = {}  # catalog path -> (modification time, {English: translation})


def language():
    """'en' or 'zh', as the environment says now: NN_LANG first, then the locale (LC_ALL, LC_MESSAGES, LANG)."""
    chosen = os.environ.get("NN_LANG", "").strip()
    if chosen:
        code = chosen.replace("-", "_").split("_")[0].split(".")[0].lower()  # zh_CN.UTF-8 -> zh
        if code not in LANGUAGES:
            raise ValueError(f"NN_LANG={chosen!r} is not a language of this course: expected 'en' or 'zh' "
                             f"(zh_CN.UTF-8 and the like are read as 'zh')")
        return code
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):  # the order in which POSIX lets them override each other
        value = os.environ.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def catalog_path(lang, name=MESSAGES):
    """locale/zh_CN/LC_MESSAGES/messages.po for 'zh' (name picks another catalog of that folder)."""
    return LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES" / name


def catalog_paths(lang):
    """Every catalog of the language's LC_MESSAGES folder (messages.po and its siblings), by name."""
    return sorted(catalog_path(lang).parent.glob("*.po"))


def read_catalog(path):
    """The entries of a .po file; a clear error for a file that is missing or not a catalog."""
    if not path.is_file():
        raise FileNotFoundError(f"translation catalog {path} not found: expected a gettext .po file there")
    return po.read(path)


def translations(path):
    """{English: translation} of a catalog, without fuzzy and untranslated entries; reread when the file changes."""
    stamp = path.stat().st_mtime_ns
    cached = _cache.get(path)
    if cached is None or cached[0] != stamp:
        table = {e.msgid: e.msgstr for e in read_catalog(path)
                 if e.msgid and e.msgstr and not e.fuzzy and not e.obsolete and e.context is None}
        cached = _cache[path] = (stamp, table)
    return cached[1]


def _(message):
    """message in the reader's language: its translation from the catalog, or itself (English, or not translated)."""
    lang = language()
    if lang == "en":
        return message
    for path in catalog_paths(lang):
        found = translations(path).get(message)
        if found is not None:
            return found
    return message


def width(text):
    """How many terminal columns text takes: a wide character (Chinese) takes two, as a terminal draws it."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def chinese_edition():
    """What the first cell of a Chinese notebook calls: the code speaks Chinese from here on (NN_LANG=zh), and
    the figures go to static/zh/ (unless NN_STATIC_DIR says where), so the English figures stay as they are.
    The weights and search results stay in log/, shared with the English edition: the same code computes them."""
    os.environ["NN_LANG"] = "zh"
    os.environ.setdefault("NN_STATIC_DIR", str(ROOT / "static" / "zh"))


# The same lookup under gettext's own name, for code where _ is a throwaway variable: notebook 06,
# whose students write `for _ in range(...)` and `a, _ = ...` in the cells around it.
gettext = _
