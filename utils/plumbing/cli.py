"""What the command lines share: run folders that never overwrite results, and errors without tracebacks.

The commands themselves are in utils/commands/ (python -m utils COMMAND).

In Chinese (NN_LANG=zh, utils.plumbing.language) a command's --help and errors are Chinese: the
commands pass their texts through _(), and parser() routes argparse's own words ("usage:",
"options", "the following arguments are required", ...) through the same catalogs (see
speak_argparse_in_our_language).
"""
import argparse
import gettext
import re
import sys
import time
from pathlib import Path

from utils.plumbing import paths
from utils.plumbing.language import _, language, width


def run_folder(name, out=None):
    """out if given, else a new folder log/runs/<name>-<YYYYmmdd-HHMMSS> (never an existing one).

    out is checked before any work starts: not empty (that would be the current folder), and
    neither it nor a folder above it an existing file.
    """
    if out is not None:
        if not str(out).strip():
            raise ValueError(_("--out {out}: an empty folder name; expected the path of a folder, "
                               "e.g. --out log/").format(out=repr(str(out))))
        out = Path(out)
        for folder in (out, *out.parents):
            if folder.exists() or folder.is_symlink():
                if not folder.is_dir():
                    raise NotADirectoryError(_("--out {out}: {folder} is a regular file, not a folder; "
                                               "expected a folder (existing or new)").format(out=out, folder=folder))
                break
        return out
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = paths.log_dir() / "runs" / f"{name}-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = folder.with_name(f"{name}-{stamp}-{n}")
    return folder


def refuse_overwrite(path, flag="--overwrite"):
    """Raise FileExistsError naming path and the flag that allows replacing it."""
    if Path(path).exists():
        raise FileExistsError(_("{path} exists and would be replaced; pass {flag} to replace it, "
                                "or choose another folder with --out").format(path=path, flag=flag))


def check_at_least(option, value, low=1):
    """value if it is an integer >= low, else a ValueError naming the option, e.g. check_at_least("--threads", 0)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(_("{option} must be an integer >= {low}, got {value}").format(
            option=option, low=low, value=repr(value)))
    return value


CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")  # Chinese characters and punctuation
# A line may break before each Chinese character and at spaces; closing punctuation stays with what it follows.
_PIECES = re.compile(r"(?:[\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]|[^\s\u2e80-\u9fff\uf900-\ufaff"
                     r"\ufe30-\ufe4f\uff00-\uffef]+)[，。：；、）》！？]*| ")


def wrap(text, columns):
    """text (whitespace collapsed) as lines of at most columns terminal columns, broken between Chinese
    characters as well as at spaces (textwrap breaks at spaces only, and counts a Chinese character as one)."""
    lines, line = [], ""
    for piece in _PIECES.findall(" ".join(text.split())):
        if line.strip() and piece != " " and width(line.rstrip() + piece) > columns:
            lines.append(line.rstrip())
            line = ""
        line += piece if line or piece != " " else ""
    return [*lines, line.rstrip()] if line.strip() else lines


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, except None: there the help text says what leaving it out means.

    Text with Chinese in it is wrapped by its width on the terminal; English is formatted as argparse does.
    """

    def _get_help_string(self, action):
        text = action.help if action.default is None else super()._get_help_string(action)
        # argparse appends " (default: %(default)s)" without passing it to gettext: translate it here
        return text and text.replace(" (default: %(default)s)", _(" (default: %(default)s)"))

    def _split_lines(self, text, columns):
        return wrap(text, columns) if CJK.search(text) else super()._split_lines(text, columns)

    def _fill_text(self, text, columns, indent):
        if not CJK.search(text):
            return super()._fill_text(text, columns, indent)
        return "\n".join(indent + line for line in wrap(text, columns - len(indent)))

    def _format_usage(self, usage, actions, groups, prefix):
        # argparse indents the usage's continuation lines by len(prefix): give it spaces as wide as "用法："
        prefix = _argparse_gettext("usage: ") if prefix is None else prefix
        text = super()._format_usage(usage, actions, groups, " " * width(prefix))
        return prefix + text[width(prefix):]

    def format_help(self):
        text = super().format_help()
        if _chinese():  # argparse puts an ASCII colon after a section's title; Chinese takes "："
            text = re.sub(r"^(\S.*?[\u4e00-\u9fff]):$", r"\1：", text, flags=re.M)
        return text


def _chinese():
    """True when the reader's language is Chinese; False also for an NN_LANG that names no language of the
    course (the commands report that error, and argparse's words must not fail before they can)."""
    try:
        return language() == "zh"
    except ValueError:
        return False


def _argparse_gettext(message):
    """argparse's gettext: our catalogs in Chinese, else what argparse did before (gettext's "argparse" domain)."""
    return _(message) if _chinese() else gettext.gettext(message)


def _argparse_ngettext(singular, plural, n):
    return _(singular if n == 1 else plural) if _chinese() else gettext.ngettext(singular, plural, n)


def speak_argparse_in_our_language():
    """Route argparse's own texts through our catalogs when the language is Chinese.

    argparse looks up each of its texts ("usage: ", "options", "show this help message and exit",
    "unrecognized arguments: %s", ...) with its module-level _() and ngettext() when it uses them,
    so replacing those two names is enough; the msgids are argparse's English, in commands.po.
    In English the texts are exactly argparse's. Called by parser(); calling it again changes nothing.
    """
    argparse._, argparse.ngettext = _argparse_gettext, _argparse_ngettext


def parser(prog, description, epilog=None):
    """An argument parser whose --help shows defaults; prog: how the command is typed, e.g. "python -m utils train".

    description and epilog come translated (_("...")); argparse's own words follow the language too.
    """
    speak_argparse_in_our_language()
    return argparse.ArgumentParser(prog=prog, description=description, epilog=epilog, formatter_class=_ShowDefaults)


def run(main, argv=None):
    """Call main(argv) and return its exit status (0 for None); print a ValueError or OSError as one line
    on stderr and exit 1, without a traceback."""
    try:
        language()  # an NN_LANG that names no language of the course is the first error, said in English
        return main(argv) or 0
    except (ValueError, OSError) as e:
        print((_("error: {message}") if _chinese() else "error: {message}").format(message=e), file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(_("interrupted") if _chinese() else "interrupted", file=sys.stderr)
        sys.exit(130)
