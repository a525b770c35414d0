"""bench/blas.py: every benchmark names the OpenBLAS kernel it ran, and says when the environment chose it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import blas

ROOT = Path(__file__).resolve().parent.parent
DESCRIBE = "from bench import blas; print(blas.describe()); print(blas.kernel()); print(blas.own_kernel())"


def describe(**changes):
    """(the line, the kernel that ran, the CPU's own kernel) in a fresh process with the environment changed."""
    env = {k: v for k, v in os.environ.items() if k not in blas.PINNING}
    env.update(changes, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", DESCRIBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()


pytestmark = pytest.mark.skipif(blas.kernel() == "none", reason="this NumPy uses no OpenBLAS (e.g. Accelerate on a Mac)")


def test_unpinned_kernel_is_named_as_the_cpus_own():
    line, running, own = describe()
    assert running not in ("none", "unknown", "") and running == own
    assert line == f"OpenBLAS kernel {running} (the CPU's own choice)"


def test_pinned_kernel_is_named_with_the_variable_and_the_cpus_own():
    # Prescott (SSE3) runs on every x86-64 CPU; threadpoolctl calls it Katmai.
    line, running, own = describe(OPENBLAS_CORETYPE="Prescott")
    assert running == "Katmai"
    assert "OPENBLAS_CORETYPE=Prescott" in line and line.startswith("OpenBLAS kernel Katmai")
    if own != running:
        assert f"this CPU's own would be {own}" in line and "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" in line
    else:
        assert "the CPU's own choice is the same" in line
