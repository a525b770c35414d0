"""Small argument checks shared by the data, training and search code.

Each check names the parameter, the value it got and what it expected, so a caller
never sees a bare TypeError from a comparison deep inside the code.
"""
import math
import numbers

import numpy as np


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
    if not is_int(value):
        raise ArgumentTypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"between {low} and {high}" if low is not None and high is not None
                  else f">= {low}" if low is not None else f"<= {high}")
        raise ValueError(f"{name} must be an integer {bounds}, got {value}")
    return int(value)


def check_bool(name, value):
    """value if it is True or False (a NumPy bool too); "no" or 0 are refused, not read as truth values."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_choice(name, value, choices):
    """value if it is one of choices; else a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
