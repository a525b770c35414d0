"""Read and write gettext .po files: the translation catalogs of utils.plumbing.language and .translate.

A catalog is a list of entries; each maps an English text (msgid), in a context (msgctxt), to its
translation (msgstr), as GNU gettext's tools and editors such as Poedit read and write them:

    #, fuzzy
    #| msgid "The English this translation was made from"
    msgctxt "01_data_preparation/7d2a6970"
    msgid "The English now"
    msgstr "译文"

"fuzzy" marks a translation made for other English (kept in "#|" for comparison). The entries of
deleted text stay at the end, commented out with "#~". The first entry (msgid "") is the header.
Only what the catalogs here use is supported: no plural forms.
"""
import re
from dataclasses import dataclass, field

from utils.plumbing.atomic import atomic_write

ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
UNESCAPES = {v[1]: k for k, v in ESCAPES.items()}
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"\s*$')
KEYWORD = re.compile(r'^(msgctxt|msgid|msgstr)\s+(".*)$')


@dataclass
class Entry:
    msgid: str
    msgstr: str = ""
    context: str = None
    flags: set = field(default_factory=set)
    previous: str = None          # the msgid the translation was made for (fuzzy entries)
    comments: list = field(default_factory=list)  # "#." lines: notes for the translator
    obsolete: bool = False

    @property
    def fuzzy(self):
        return "fuzzy" in self.flags


def quote(text):
    """text as one or more .po string lines: one per line of text, as gettext's tools write it."""
    escaped = ["".join(ESCAPES.get(ch, ch) for ch in line) for line in text.splitlines(keepends=True)]
    if len(escaped) <= 1:
        return [f'"{escaped[0] if escaped else ""}"']
    return ['""', *(f'"{line}"' for line in escaped)]


def unquote(token, where):
    m = STRING.match(token)
    if not m:
        raise ValueError(f"{where}: expected a quoted string, found {token!r}")
    return re.sub(r"\\(.)", lambda e: UNESCAPES.get(e.group(1), e.group(0)), m.group(1))


def read(path):
    """The entries of a .po file, header first; a ValueError names the line that is not .po."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not a UTF-8 gettext catalog: {e}") from e
    entries, fields, current, key = [], {}, None, None

    def finish():
        nonlocal fields, current, key
        if current is not None:
            if "msgid" not in current or "msgstr" not in current:
                raise ValueError(f"{path}: the entry ending before line {number} lacks a msgid or msgstr")
            entries.append(Entry(current["msgid"], current["msgstr"], current.get("msgctxt"), **fields))
        fields, current, key = {}, None, None

    for number, raw in enumerate([*lines, ""], start=1):
        where = f"{path}, line {number}"
        line = raw.strip()
        obsolete = line.startswith("#~")
        if obsolete:
            line = line[2:].strip()
            fields["obsolete"] = True
        if not line:
            if not obsolete:
                finish()
            continue
        if line.startswith("#,"):
            fields.setdefault("flags", set()).update(f.strip() for f in line[2:].split(",") if f.strip())
        elif line.startswith("#|"):
            rest = line[2:].strip()
            rest = rest[len("msgid"):].strip() if rest.startswith("msgid") else rest
            fields["previous"] = fields.get("previous", "") + unquote(rest, where)
        elif line.startswith("#."):
            fields.setdefault("comments", []).append(line[2:].strip())
        elif line.startswith("#"):
            continue  # a translator's comment or a source location: not kept
        elif m := KEYWORD.match(line):
            if m.group(1) != "msgstr" and current is not None and "msgstr" in current:
                finish()
            current = {} if current is None else current
            key = m.group(1)
            current[key] = unquote(m.group(2), where)
        elif line.startswith('"') and key is not None:
            current[key] += unquote(line, where)
        else:
            raise ValueError(f"{where}: expected msgctxt, msgid, msgstr, a quoted string or a comment, "
                             f"found {raw!r}")
    return entries


def format_entry(entry):
    prefix = "#~ " if entry.obsolete else ""
    out = [f"#. {c}" for c in entry.comments]
    if entry.flags:
        out.append("#, " + ", ".join(sorted(entry.flags)))
    if entry.previous is not None:
        first, *rest = quote(entry.previous)
        out += [f"#| msgid {first}", *(f"#| {line}" for line in rest)]
    for key, value in (("msgctxt", entry.context), ("msgid", entry.msgid), ("msgstr", entry.msgstr)):
        if value is not None:
            first, *rest = quote(value)
            out += [f"{prefix}{key} {first}", *(prefix + line for line in rest)]
    return "\n".join(out) + "\n"


def write(path, entries):
    """Write entries (header first) as a .po file, atomically, in UTF-8."""
    text = "\n".join(format_entry(e) for e in entries)
    with atomic_write(path, "wb") as f:
        f.write(text.encode("utf-8"))
