"""Small argument checks shared by the layers, the data, training and search code.

Each check names the parameter, the value it got and what it expected, so a caller
never sees a bare TypeError from a comparison deep inside the code.
"""
import contextlib
import math
import numbers

import numpy as np

from utils.plumbing.language import _


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. Both a TypeError (what Python raises for a wrong
    type) and a ValueError (what this project's callers catch for a bad value)."""


def is_int(x):
    """True for Python and NumPy integers; False for bool (True is not a size) and for 2.0."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def is_number(x):
    """True for a finite real number (int or float, Python or NumPy), False for bool, NaN, inf, str."""
    return (isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))
            and math.isfinite(x))


def check_int(name, value, low=None, high=None):
    """value as an int if it is an integer in [low, high] (None: no bound); else a clear error.

    Raises ArgumentTypeError for a non-integer, ValueError for one out of range.
    """
    if is_int(value) and (low is None or value >= low) and (high is None or value <= high):
        return int(value)
    bounds = (_(" between {low} and {high}") if low is not None and high is not None
              else " >= {low}" if low is not None else " <= {high}" if high is not None else "").format(
                  low=low, high=high)
    if not is_int(value):
        raise ArgumentTypeError(_("{name} must be an integer{bounds}, got {value} ({type})").format(
            name=name, bounds=bounds, value=repr(value), type=type(value).__name__))
    raise ValueError(_("{name} must be an integer{bounds}, got {value}").format(name=name, bounds=bounds, value=value))


def check_bool(name, value):
    """value if it is True or False (a NumPy bool too); "no" or 0 are refused, not read as truth values."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(_("{name} must be True or False, got {value} ({type})").format(
            name=name, value=repr(value), type=type(value).__name__))
    return bool(value)


def check_choice(name, value, choices):
    """value if it is one of choices; else a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(_("{name} must be one of {choices}, got {value}").format(
            name=name, choices=", ".join(map(repr, choices)), value=repr(value)))
    return value


def check_fraction(name, value):
    """value as a float in [0, 1) (NaN and inf fail the comparison), or a ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(_("{name} must be in [0, 1) (a real number), got {value}").format(
            name=name, value=repr(value)))
    return float(value)


def check_rng(name, rng):
    """A Generator from a Generator, None or a seed; never NumPy's global random state."""
    if isinstance(rng, (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)) or rng is None or (
            is_int(rng) and rng >= 0):
        return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    raise ValueError(_("{name} must be a numpy Generator, None or an integer seed >= 0, got {rng}").format(
        name=name, rng=repr(rng)))


def check_float_dtype(name, dtype):
    """np.dtype(dtype) if it is float32 or float64, else a ValueError naming it."""
    with contextlib.suppress(TypeError):
        if dtype is not None and np.dtype(dtype) in (np.float32, np.float64):
            return np.dtype(dtype)
    raise ValueError(_("{name} must be float32 or float64, got {dtype}").format(name=name, dtype=repr(dtype)))


def check_finite(x, who):
    """Raise a ValueError naming who when the array x holds NaN or inf."""
    if not np.isfinite(x).all():
        raise ValueError(_("{who}: the input of shape {shape} contains NaN or inf").format(who=who, shape=x.shape))


# ---------------------------------------------------------------- the input of a layer

def check_input(layer, x, ndim, features=None):
    """Raise a ValueError naming the layer when x is not an array of rank ndim (with `features` columns)."""
    if not isinstance(x, np.ndarray):
        raise ValueError(_("{layer}: expected a NumPy array, got {type}").format(
            layer=repr(layer), type=type(x).__name__))
    if x.ndim != ndim or (features is not None and x.shape[-1] != features):
        want = "(N, " + ("..." if features is None else str(features)) + ")" if ndim == 2 else f"{ndim}-D"
        raise ValueError(_("{layer}: expected input of shape {want}, got shape {shape}").format(
            layer=repr(layer), want=want, shape=x.shape))


def check_image(layer, x, channels, kernel_size, padding=0):
    """Return (N, C, H, W) of x, or raise a ValueError naming the layer and the shapes."""
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        got = _("shape {shape}").format(shape=x.shape) if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(_("{layer}: expected images of shape (N, C, H, W), got {got}").format(
            layer=repr(layer), got=got))
    n, c, h, w = x.shape
    if channels is not None and c != channels:
        raise ValueError(_("{layer}: expected {channels} channels, got input of shape {shape}").format(
            layer=repr(layer), channels=channels, shape=x.shape))
    if min(h, w) + 2 * padding < kernel_size:
        pad = _(" padded by {padding}").format(padding=padding) if padding else ""
        raise ValueError(_("{layer}: the image {h}x{w}{pad} is smaller than the {k}x{k} kernel (input shape {shape})")
                         .format(layer=repr(layer), h=h, w=w, pad=pad, k=kernel_size, shape=x.shape))
    return n, c, h, w
