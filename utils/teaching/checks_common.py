"""What every exercise check of notebook 06 shares: run the student's code, compare, say the verdict.

Each ``check_*`` (checks_layers, checks_training, checks_optim, checks_loop, checks_plots) runs
the student's code and a reference on the same small float64 inputs, and says one of three things:
- right: one line, "correct: relative error 3e-10 (...)";
- wrong: an AssertionError naming the output that differs, the likely cause in the student's
  terms (recognised by comparing with the results of known mistakes) and the formula expected;
- not written yet (NotImplementedError): "not implemented yet: write ..., then rerun this cell",
  and nothing is raised, so that the notebook as handed out runs top to bottom.
Every message is in the reader's language (Chinese with NN_LANG=zh: utils/plumbing/language.py, the
catalog locale/zh_CN/LC_MESSAGES/checks_a.po); identifiers, formulas and shapes stay as they are.
"""
import contextlib
import functools
import re
import traceback
import warnings

import numpy as np

from utils.plumbing import language
from utils.plumbing.language import _
from utils.teaching.gradcheck import rel_error

TOL = 1e-7  # float64 against float64: a right answer agrees to ~1e-15


class NotWrittenYet(Exception):
    """The student's code raised NotImplementedError; what names the blank."""


# One space between two Chinese characters: what a template's space before {what} leaves when {what} is a
# Chinese phrase ("先写好 上面的各部分") rather than a name ("先写好 Linear.backward"). English has none.
CHINESE = r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]"  # CJK punctuation, ideographs, full-width forms
BETWEEN_CJK = re.compile(f"(?<={CHINESE}) (?={CHINESE})")


def tidy(text):
    """text without a space between two Chinese characters (English text comes back unchanged)."""
    return BETWEEN_CJK.sub("", text)


def unwritten(what):
    """The one line a check prints for a blank still empty, in the reader's language: what is a name
    (Linear.backward) or a phrase (the parts above, then train both networks); both read as one sentence."""
    return tidy(_("not implemented yet: write {what}, then rerun this cell").format(what=what))


def after_prefix(line, english):
    """The rest of a printed line that starts with english ("correct:", "not implemented yet:") or with its
    translation in any language of the course, stripped; None for a line that does not.

    The grader (utils/teaching/verdict.py) reads the checks' lines with it, whatever language printed them:
    the English prefix stays the test, its translations are what the Chinese edition prints.
    """
    prefixes = [english] + [language.translations(path).get(english) for lang in language.LOCALES
                            for path in language.catalog_paths(lang)]
    for prefix in prefixes:
        if prefix and line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


def checker(fn):
    """Turn NotWrittenYet into the friendly one-line message; let AssertionError through."""
    @functools.wraps(fn)
    def check(*args, **kwargs):
        try:
            fn(*args, **kwargs)
        except NotWrittenYet as e:
            print(unwritten(e))
    return check


@contextlib.contextmanager
def skip_if_unwritten():
    """Run a block that uses the student's code; print the friendly message if a blank is still empty."""
    try:
        yield
    except NotImplementedError as e:
        print(unwritten(str(e) or _("the function above")))


def failing_line(error):
    """The source line of the innermost frame where error was raised ("" if unknown)."""
    frames = traceback.extract_tb(error.__traceback__)
    return (frames[-1].line or "").strip() if frames else ""


def call(what, fn, *args, cause=None, explain=None, **kwargs):
    """fn(*args, **kwargs); NotImplementedError becomes NotWrittenYet, any other error an AssertionError.

    explain(error) -> a sentence or None: the likely cause of that error, when the check can tell
    (e.g. which product of a backward pass has its operands the wrong way round);
    cause: the likely cause of any other error (by default: an array of the wrong shape).
    """
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args, **kwargs)
    except NotImplementedError as e:
        raise NotWrittenYet(str(e) or what) from None
    except Exception as e:
        line = failing_line(e)
        if isinstance(e, AttributeError):  # e.g. backward reads self.x, which forward never kept
            cause = _("an attribute read before it was set: keep what a later call needs on self in the call "
                      "that runs first (forward keeps self.x for backward; __init__ creates what step reads)")
        why = ((explain(e, line) if explain else None) or cause
               or _("an array of the wrong shape; print the shapes of the arrays on that line"))
        if line:
            text = _("{what} raised {error} on the line `{line}`: {message}. Likely cause: {cause}")
        else:
            text = _("{what} raised {error}: {message}. Likely cause: {cause}")
        raise AssertionError(text.format(what=what, error=type(e).__name__, line=line, message=e, cause=why)) from e


def numbers(what, value, shape=None):
    """value as a float64 array, or an AssertionError saying what the student's code returned instead."""
    if value is None:
        raise AssertionError(_("{what} returned None: did you forget `return`?").format(what=what))
    try:
        if isinstance(value, (str, bytes)) or any(isinstance(v, (str, bytes)) for v in np.ravel(
                np.asarray(value, dtype=object))):
            raise TypeError("text")
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        want = (_("a number") if shape == () else
                _("an array of numbers of shape {shape}").format(shape=shape) if shape else _("an array of numbers"))
        raise AssertionError(_("{what} returned {type} {value}; expected {want}").format(
            what=what, type=type(value).__name__, value=f"{value!r:.60}", want=want)) from None
    return out


def build(name, cls, args):
    """The student's layer cls(*args), checked to have the params and grads dicts the layer contract asks for."""
    student = call(f"{name}.__init__", cls, *args, cause=_("a mistake in __init__ itself; it runs with the "
                   "arguments {args}, as the exercise gives them").format(args=args))
    for attribute in ("params", "grads"):
        if not isinstance(getattr(student, attribute, None), dict):
            raise AssertionError(_("{name}.__init__ set no self.{attribute} dict (got {type}). Likely cause: "
                                   "super().__init__() was not called first (it creates self.params and self.grads)"
                                   ).format(name=name, attribute=attribute,
                                            type=type(getattr(student, attribute, None)).__name__))
    return student


def close(a, b, tol=TOL):
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and rel_error(a, b) < tol


def compare(what, got, want, n=None, extra=(), formula=None, plural=False):
    """Return the relative error of got against want, or raise AssertionError with the likely cause.

    what: names the output, e.g. "Linear.backward: grads['W']"; want: the reference array;
    n: the batch size, so that a factor of N can be recognised; extra: (candidate, cause)
    pairs, the results of known mistakes, tried first; formula: what was expected, said after
    the cause (e.g. "dW = x.T @ dout"); plural: what names a plural ("the weights ... are wrong").
    """
    def fail(cause):
        if formula:
            text = (_("{what} are wrong. Likely cause: {cause} (expected: {formula})") if plural else
                    _("{what} is wrong. Likely cause: {cause} (expected: {formula})"))
        else:
            text = (_("{what} are wrong. Likely cause: {cause}") if plural
                    else _("{what} is wrong. Likely cause: {cause}"))
        raise AssertionError(text.format(what=what, cause=cause, formula=formula))

    if got is None:
        fail(_("it is None: a missing `return` (or the array was never assigned)"))
    want = np.asarray(want, dtype=np.float64)
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        fail(_("expected an array of shape {shape}, got {type}").format(shape=want.shape, type=type(got).__name__))
    if close(got, want):
        return rel_error(got, want)
    for candidate, cause in extra:
        if close(got, np.asarray(candidate, dtype=np.float64)):
            fail(cause)
    if got.shape != want.shape:
        if got.ndim == 2 and got.T.shape == want.shape:
            fail(_("transposed: it has shape {got}, the reference {want}; a gradient has the shape of what it "
                   "is the gradient of (swap the operands of the product, or transpose them)"
                   ).format(got=got.shape, want=want.shape))
        fail(_("shape mismatch: expected {want}, got {got}").format(want=want.shape, got=got.shape))
    if not np.all(np.isfinite(got)):
        fail(_("it contains NaN or inf (an overflow, or a division by zero)"))
    if n and close(got * n, want):
        fail(_("it is N = {n} times too small: an extra division by the batch size N").format(n=n))
    if n and close(got, want * n):
        fail(_("it is N = {n} times too large: a missing division by the batch size N").format(n=n))
    if close(-got, want):
        fail(_("a sign error: it is the reference times -1"))
    if not np.any(got):
        fail(_("it is all zeros: was it ever computed (or assigned to the right name)?"))
    nonzero = np.abs(want) > 1e-12
    ratio = got[nonzero] / want[nonzero] if nonzero.any() else np.array([])
    if ratio.size and np.allclose(ratio, ratio[0], rtol=1e-9) and not np.any(got[~nonzero]):
        fail(_("off by a constant factor {factor:.4g}").format(factor=ratio[0]))
    fail(_("it differs from the reference (relative error {err:.1e}); compare your formula with the one in the "
           "markdown above, term by term").format(err=rel_error(got, want)))


def correct(err, label):
    """Print the verdict of a check that passed; label (in the reader's language) says what was checked."""
    print(_("correct: relative error {err:.0e} ({what})").format(err=err, what=label))
