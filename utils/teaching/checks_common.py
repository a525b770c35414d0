"""What every exercise check of notebook 06 shares: run the student's code, compare, say the verdict.

Each ``check_*`` (checks_layers, checks_training, checks_optim, checks_loop, checks_plots) runs
the student's code and a reference on the same small float64 inputs, and says one of three things:
- right: one line, "correct: relative error 3e-10 (...)";
- wrong: an AssertionError naming the output that differs, the likely cause in the student's
  terms (recognised by comparing with the results of known mistakes) and the formula expected;
- not written yet (NotImplementedError): "not implemented yet: write ..., then rerun this cell",
  and nothing is raised, so that the notebook as handed out runs top to bottom.
"""
import contextlib
import functools
import traceback
import warnings

import numpy as np

from utils.teaching.gradcheck import rel_error

TOL = 1e-7  # float64 against float64: a right answer agrees to ~1e-15


class NotWrittenYet(Exception):
    """The student's code raised NotImplementedError; what names the blank."""


def checker(fn):
    """Turn NotWrittenYet into the friendly one-line message; let AssertionError through."""
    @functools.wraps(fn)
    def check(*args, **kwargs):
        try:
            fn(*args, **kwargs)
        except NotWrittenYet as e:
            print(f"not implemented yet: write {e}, then rerun this cell")
    return check


@contextlib.contextmanager
def skip_if_unwritten():
    """Run a block that uses the student's code; print the friendly message if a blank is still empty."""
    try:
        yield
    except NotImplementedError as e:
        print(f"not implemented yet: write {str(e) or 'the function above'}, then rerun this cell")


def failing_line(error):
    """The source line of the innermost frame where error was raised ("" if unknown)."""
    frames = traceback.extract_tb(error.__traceback__)
    return (frames[-1].line or "").strip() if frames else ""


def call(what, fn, *args, cause="an array of the wrong shape; print the shapes of the arrays on that line",
         explain=None, **kwargs):
    """fn(*args, **kwargs); NotImplementedError becomes NotWrittenYet, any other error an AssertionError.

    explain(error) -> a sentence or None: the likely cause of that error, when the check can tell
    (e.g. which product of a backward pass has its operands the wrong way round).
    """
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args, **kwargs)
    except NotImplementedError as e:
        raise NotWrittenYet(str(e) or what) from None
    except Exception as e:
        line = failing_line(e)
        where = f" on the line `{line}`" if line else ""
        if isinstance(e, AttributeError):  # e.g. backward reads self.x, which forward never kept
            cause = ("an attribute read before it was set: keep what a later call needs on self in the call "
                     "that runs first (forward keeps self.x for backward; __init__ creates what step reads)")
        why = (explain(e, line) if explain else None) or cause
        raise AssertionError(f"{what} raised {type(e).__name__}{where}: {e}. Likely cause: {why}") from e


def numbers(what, value, shape=None):
    """value as a float64 array, or an AssertionError saying what the student's code returned instead."""
    if value is None:
        raise AssertionError(f"{what} returned None: did you forget `return`?")
    try:
        if isinstance(value, (str, bytes)) or any(isinstance(v, (str, bytes)) for v in np.ravel(
                np.asarray(value, dtype=object))):
            raise TypeError("text")
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        want = "a number" if shape == () else "an array of numbers" + (f" of shape {shape}" if shape else "")
        raise AssertionError(f"{what} returned {type(value).__name__} {value!r:.60}; expected {want}") from None
    return out


def build(name, cls, args):
    """The student's layer cls(*args), checked to have the params and grads dicts the layer contract asks for."""
    student = call(f"{name}.__init__", cls, *args, cause="a mistake in __init__ itself; it runs with the "
                   f"arguments {args}, as the exercise gives them")
    for attribute in ("params", "grads"):
        if not isinstance(getattr(student, attribute, None), dict):
            raise AssertionError(f"{name}.__init__ set no self.{attribute} dict (got "
                                 f"{type(getattr(student, attribute, None)).__name__}). Likely cause: "
                                 f"super().__init__() was not called first (it creates self.params and self.grads)")
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
    expected = f" (expected: {formula})" if formula else ""

    def fail(cause):
        raise AssertionError(f"{what} {'are' if plural else 'is'} wrong. Likely cause: {cause}{expected}")

    if got is None:
        fail("it is None: a missing `return` (or the array was never assigned)")
    want = np.asarray(want, dtype=np.float64)
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        fail(f"expected an array of shape {want.shape}, got {type(got).__name__}")
    if close(got, want):
        return rel_error(got, want)
    for candidate, cause in extra:
        if close(got, np.asarray(candidate, dtype=np.float64)):
            fail(cause)
    if got.shape != want.shape:
        if got.ndim == 2 and got.T.shape == want.shape:
            fail(f"transposed: it has shape {got.shape}, the reference {want.shape}; a gradient has the shape "
                 "of what it is the gradient of (swap the operands of the product, or transpose them)")
        fail(f"shape mismatch: expected {want.shape}, got {got.shape}")
    if not np.all(np.isfinite(got)):
        fail("it contains NaN or inf (an overflow, or a division by zero)")
    if n and close(got * n, want):
        fail(f"it is N = {n} times too small: an extra division by the batch size N")
    if n and close(got, want * n):
        fail(f"it is N = {n} times too large: a missing division by the batch size N")
    if close(-got, want):
        fail("a sign error: it is the reference times -1")
    if not np.any(got):
        fail("it is all zeros: was it ever computed (or assigned to the right name)?")
    nonzero = np.abs(want) > 1e-12
    ratio = got[nonzero] / want[nonzero] if nonzero.any() else np.array([])
    if ratio.size and np.allclose(ratio, ratio[0], rtol=1e-9) and not np.any(got[~nonzero]):
        fail(f"off by a constant factor {ratio[0]:.4g}")
    fail(f"it differs from the reference (relative error {rel_error(got, want):.1e}); compare your "
         "formula with the one in the markdown above, term by term")


def correct(err, label):
    print(f"correct: relative error {err:.0e} ({label})")
