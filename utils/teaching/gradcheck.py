"""Gradient checking: compare a layer's backward pass with central differences.

Used by the tests and shown in the notebooks. (The exercise checks of notebook 06, which name
a student's bug, are check_layer and friends in checks_layers.py; these only measure.) Run it in float64: in float32 the
rounding error of the differences hides all but gross mistakes.

One definition and one tolerance, used by every gradient check of the project:

    rel_error(a, b) = max over elements i of |a_i - b_i| / max(|a_i| + |b_i|, 1e-8)

(the rel_error of the CS231n assignments; the CS231n notes divide by max(|a_i|, |b_i|)
instead, which gives numbers up to twice as large). The 1e-8 floor keeps elements where both
gradients are 0 from dividing by 0. What to expect, in float64 with h = 1e-5:
- a correct backward pass: about 1e-7 or smaller (1e-10 is common); up to a few times 1e-7
  with an L2 term, or where an input sits within h of a kink (ReLU at 0, a max-pool tie);
- a bug: 1e-2 or more (a missing term, a wrong transpose, a factor of 2).
GRADCHECK_TOL, 1e-6, sits between the two: every check and test passes below it.

The lines that report a check, in the reader's language (utils.plumbing.language):

    print(gradcheck_line("Linear", errors))
    # Linear               gradients checked: x, W, b; largest relative error below 1e-06: True
    print(below_tol(errors))   # largest relative error below 1e-06: True
"""
import numpy as np

from utils.plumbing.language import _

GRADCHECK_TOL = 1e-6


def rel_error(a, b):
    """Largest elementwise relative error: max_i |a_i - b_i| / max(|a_i| + |b_i|, 1e-8).

    a, b: arrays of the same shape (an analytic and a numerical gradient). Returns a float;
    below GRADCHECK_TOL (1e-6) counts as agreeing (see the module docstring for why).
    """
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


def numerical_gradient(f, x, h=1e-5, indices=None):
    """Central-difference gradient of the scalar function f() with respect to the array x.

    x is changed in place, one element at a time, and restored. indices: flat indices of the
    elements to perturb (a spot check of a large array); then an array of their gradients
    is returned instead of one shaped like x.
    """
    chosen = range(x.size) if indices is None else indices
    grad = np.zeros(len(chosen), dtype=x.dtype)
    for j, flat_index in enumerate(chosen):
        i = np.unravel_index(flat_index, x.shape)  # works for any memory layout, views included
        old = x[i]
        x[i] = old + h
        f_plus = f()
        x[i] = old - h
        f_minus = f()
        x[i] = old
        grad[j] = (f_plus - f_minus) / (2 * h)
    return grad.reshape(x.shape) if indices is None else grad


def gradcheck_layer(layer, x, rng=None, h=1e-5):
    """Relative errors of layer.backward against central differences, for dX and every parameter.

    The scalar checked is sum(forward(x) * dout) for a random dout, whose gradient with
    respect to the output is exactly dout. Returns {"x": err, "W": err, ...}.
    """
    rng = np.random.default_rng(rng)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    analytic = {"x": dx, **{k: g.copy() for k, g in layer.grads.items()}}

    def f():
        return float(np.sum(layer.forward(x) * dout))

    errors = {"x": rel_error(analytic["x"], numerical_gradient(f, x, h))}
    for k, p in layer.params.items():
        errors[k] = rel_error(analytic[k], numerical_gradient(f, p, h))
    return errors


def gradcheck_loss(loss_fn, logits, y, h=1e-5):
    """Relative error of loss_fn.backward() against central differences of loss_fn.forward."""
    loss_fn.forward(logits, y)
    analytic = loss_fn.backward()
    return rel_error(analytic, numerical_gradient(lambda: loss_fn.forward(logits, y), logits, h))


def _yes_no(ok):
    """True/False as the reader's language says it (the English keeps Python's True and False)."""
    return _("True") if ok else _("False")


def below_tol(errors, tol=None):
    """"largest relative error below 1e-06: True" for errors, {name: rel_error} or one number."""
    tol = GRADCHECK_TOL if tol is None else tol
    worst = max(errors.values()) if isinstance(errors, dict) else float(errors)
    return _("largest relative error below {tol:g}: {ok}").format(tol=tol, ok=_yes_no(worst < tol))


def every_below_tol(ok, tol=None):
    """"every relative error below 1e-06: True", ok saying whether they all are."""
    tol = GRADCHECK_TOL if tol is None else tol
    return _("every relative error below {tol:g}: {ok}").format(tol=tol, ok=_yes_no(ok))


def gradcheck_line(name, errors, width=20, tol=None):
    """One line of a gradient-check table: the layer's name (padded to width), what was checked, the verdict.

    errors: {"x": err, "W": err, ...} as gradcheck_layer returns it.
    """
    return _("{name} gradients checked: {names}; {verdict}").format(
        name=f"{name:{width}s}", names=", ".join(errors), verdict=below_tol(errors, tol))
