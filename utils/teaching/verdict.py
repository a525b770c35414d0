"""The grader's checks, run inside the student's kernel: a verdict from what each check does, not from what it prints.

The grader (utils/teaching/grader.py) sends the kernel, after the cells of each exercise, one
line of its own that imports this module afresh and calls report() with the check calls the
handed-out notebook makes for that exercise, e.g. ["check_layer(Linear)"]. Each call is
evaluated in the student's namespace (so `Linear` is the student's class) with every check_*
name bound to the check of utils/teaching/checks*.py, imported anew here: a student cell that
replaced check_layer by print, or patched the check modules, does not reach these.

The verdict of one call is what the check did:
- it returned: "correct" (the message is its "correct: ..." line);
- it raised AssertionError: "wrong", the message names the likely bug;
- the student's code raised NotImplementedError (a blank still empty), or a name the call
  needs is not defined: "not implemented";
- anything else (a TypeError, MemoryError, sys.exit in the student's code): "error", saying what.
report() sends the verdicts back with display(), under a MIME type the grader alone reads, with
the nonce the grader chose for this one call; what the student's cells printed is never read.
The verdicts are English words (the grader compares them); their messages are in the reader's
language (Chinese where the notebook set NN_LANG=zh), as the checks print and raise them.
"""
import contextlib
import importlib
import pkgutil
import resource
import sys

from IPython.display import display

import utils.teaching
from utils.plumbing.language import _

MIME = "application/x-nn-grade+json"
VERDICTS = ("correct", "not implemented", "wrong", "error")  # from best to worst: a part takes its worst
MAX_PRINTED = 10_000  # characters of a check's printed output kept (the student's code prints too)


class _Capped:
    """A stdout that keeps the first MAX_PRINTED characters: a student's print loop cannot fill the memory."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s[:max(0, MAX_PRINTED - len(self.text))]
        return len(s)

    def flush(self):
        pass


def fresh_checks():
    """{name: function} of every check_* in utils/teaching/checks*.py, the modules imported anew.

    Also imported anew: gradcheck, whose rel_error every comparison uses.
    """
    for name in [m for m in sys.modules if m.startswith(("utils.teaching.checks", "utils.teaching.gradcheck"))]:
        del sys.modules[name]
    checks = {}
    for info in sorted(pkgutil.iter_modules(utils.teaching.__path__), key=lambda i: i.name):
        if info.name.startswith("checks"):
            module = importlib.import_module(f"utils.teaching.{info.name}")
            for attr, value in vars(module).items():
                if attr.startswith("check_") and callable(value):
                    checks.setdefault(attr, value)
    return checks


def memory_limit_mb():
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    return None if soft == resource.RLIM_INFINITY else soft // 2 ** 20


def run_check(check, args, kwargs):
    """[verdict, message] of check(*args, **kwargs), told by what it raised (its decorator bypassed)."""
    # reads the lines the checks print, in English or in the language they were printed in; taken before the
    # student's code runs, from the checks_common that fresh_checks imported afresh with the checks
    common = importlib.import_module("utils.teaching.checks_common")
    after_prefix, tidy = common.after_prefix, common.tidy
    inner = getattr(check, "__wrapped__", check)  # the @checker wrapper would turn "not written" into a print
    out = _Capped()
    try:
        with contextlib.redirect_stdout(out):
            inner(*args, **kwargs)
    except AssertionError as e:
        return ["wrong", str(e) or _("{check} failed without saying why").format(check=check.__name__)]
    except MemoryError:
        limit = memory_limit_mb()
        return ["error", _("ran out of memory (the limit is {limit} MB)").format(limit=limit) if limit
                else _("ran out of memory")]
    except (Exception, SystemExit) as e:  # SystemExit: sys.exit() in the student's code
        if type(e).__name__ == "NotWrittenYet" or isinstance(e, NotImplementedError):
            return ["not implemented", tidy(_("write {what}").format(what=e or _("the blank")))]
        return ["error", _("{check} raised {error}: {message}").format(check=check.__name__, error=type(e).__name__,
                                                                        message=e)]
    lines = out.text.splitlines()
    unwritten = [rest for rest in (after_prefix(line, "not implemented yet:") for line in lines) if rest is not None]
    if unwritten:  # a check that handles a blank itself, and prints instead of raising
        return ["not implemented", unwritten[-1]]
    said = [rest for rest in (after_prefix(line, "correct:") for line in lines) if rest is not None]
    return ["correct", said[-1] if said else ""]


def judge(namespace, calls, checks=None):
    """[[verdict, message]] for each check call (source text) evaluated in namespace."""
    checks = fresh_checks() if checks is None else checks
    results = []
    for source in calls:
        found = []
        recorders = {name: (lambda check: lambda *a, **k: found.append(run_check(check, a, k)))(check)
                     for name, check in checks.items()}
        try:
            eval(compile(source, "<the grader's check>", "eval"), {**namespace, **recorders})
        except NameError as e:
            name = getattr(e, "name", None) or str(e)
            if name.startswith("check_"):
                found.append(["error", _("no check named {name} in utils/teaching/checks*.py").format(name=name)])
            else:
                found.append(["not implemented", _("{name} is not defined (its cell is missing, was not run, "
                                                   "or raised an error)").format(name=name)])
        except MemoryError:
            found.append(["error", _("ran out of memory")])
        except (Exception, SystemExit) as e:
            found.append(["error", _("{check} raised {error}: {message}").format(check=source, error=type(e).__name__,
                                                                                message=e)])
        results.extend(found or [["error", _("{source} called no check").format(source=source)]])
    return results


def report(namespace, calls, nonce):
    """Judge calls in namespace and send the verdicts to the grader, tagged with nonce."""
    display({MIME: {"nonce": nonce, "results": judge(namespace, calls)}}, raw=True)
