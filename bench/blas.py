"""Which OpenBLAS kernel a benchmark runs, and whether the environment chose it instead of the CPU.

OpenBLAS picks its matrix kernels by CPU (SSE3, AVX, AVX2 or AVX-512 code) unless
OPENBLAS_CORETYPE names one. Some machines set that variable (with OPENBLAS_L2_SIZE) for old
OpenBLAS builds that misjudge their CPU; with the OpenBLAS inside this project's NumPy it only
slows the matrix products down (on the AMD EPYC it was measured on, the AVX2 kernel "Haswell" takes
1.7-1.9 times as long as the CPU's own AVX-512 kernel for the MLP's products). Every benchmark
prints this line so that a ratio is never read without the kernel it was measured with.
"""
import os
import subprocess
import sys

import numpy  # noqa: F401  (loads OpenBLAS, so threadpoolctl can see it)
import threadpoolctl

PINNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ASK = "import numpy, threadpoolctl; print(next((i['architecture'] for i in threadpoolctl.threadpool_info() " \
      "if i['internal_api'] == 'openblas'), 'none'))"


def kernel():
    """The kernel name threadpoolctl reports for this process's OpenBLAS ('none' without one)."""
    return next((i["architecture"] for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"),
                "none")


def own_kernel():
    """The kernel OpenBLAS picks for this CPU when neither pinning variable is set."""
    env = {k: v for k, v in os.environ.items() if k not in PINNING}
    done = subprocess.run([sys.executable, "-c", ASK], env=env, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def describe():
    """One line: the kernel this benchmark runs and, if the environment pinned it, the CPU's own."""
    running = kernel()
    pinned = {k: os.environ[k] for k in PINNING if k in os.environ}
    if not pinned:
        return f"OpenBLAS kernel {running} (the CPU's own choice)"
    own = own_kernel()
    settings = " ".join(f"{k}={v}" for k, v in pinned.items())
    if own == running:
        return f"OpenBLAS kernel {running} ({settings} is set; the CPU's own choice is the same)"
    return (f"OpenBLAS kernel {running}, pinned by {settings}; this CPU's own would be {own}: "
            f"to time that one, run `make bench` (it unsets both) or prefix the command with "
            f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")
