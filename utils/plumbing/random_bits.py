"""Random draws made faster without changing a single one: the same booleans from the same generator.

Dropout draws a uniform number per unit and keeps the unit where it is at least p. NumPy's
Generator.random(dtype=np.float32) makes each such number from one 32-bit word r of the
generator's stream, u = (r >> 8) / 2**24, so "u >= p" is "r >= 256 * ceil(p * 2**24)": the
comparison can be made on the raw words, without making the floats, in half the time.
"""
import math

import numpy as np


def uniform_at_least(rng, shape, p):
    """rng.random(shape, dtype=np.float32) >= np.float32(p), the same booleans and the same state after.

    The raw words are used only where they are the floats' words: NumPy's default bit generator
    (PCG64, whose 64-bit outputs NumPy splits low half first), an even count (words come in
    pairs), no half left over from an earlier float32 draw; otherwise the floats are drawn.
    """
    n, bits = math.prod(shape), rng.bit_generator
    threshold = 256 * math.ceil(float(np.float32(p)) * 2**24)  # p as float32, as the comparison sees it
    if (type(bits) is not np.random.PCG64 or not np.little_endian or n % 2 or threshold >= 2**32
            or bits.state["has_uint32"]):
        return rng.random(shape, dtype=np.float32) >= np.float32(p)
    return (bits.random_raw(n // 2).view(np.uint32) >= np.uint32(threshold)).reshape(shape)
