"""Gradient checking: compare a layer's backward pass with central differences.

Used by the tests and shown in the notebooks. (The exercise checks of notebook 06, which name
a student's bug, are check_layer and friends in checks_layers.py; these only measure.) Run it in float64: in float32 the
rounding error of the differences hides all but gross mistakes.
"""
import numpy as np


def rel_error(a, b):
    """Largest elementwise relative error max |a - b| / max(|a| + |b|, 1e-8)."""
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
