"""Which OpenBLAS kernel a benchmark runs, and whether the environment chose it instead of the CPU.

An OpenBLAS kernel is its matrix-product code for one family of CPUs (SSE3, AVX, AVX2 or
AVX-512). OpenBLAS picks the one for the CPU it runs on, unless OPENBLAS_CORETYPE names another.
Some machines set that variable (with OPENBLAS_L2_SIZE) to work around older OpenBLAS builds;
the OpenBLAS inside this project's NumPy does not need it, and on the AMD EPYC this project is
measured on, the pinned AVX2 kernel ("Haswell") makes most products slower than the CPU's own
AVX-512 one ("SkylakeX"). Every benchmark prints this line, so that no ratio is read without
the kernel it was measured with.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy  # noqa: F401  (loads OpenBLAS, so threadpoolctl can see it)
import threadpoolctl

PINNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
ROOT = Path(__file__).resolve().parent.parent


def kernel():
    """The kernel name threadpoolctl reports for this process's OpenBLAS ('none' without one)."""
    return next((i["architecture"] for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"),
                "none")


def own_kernel():
    """The kernel OpenBLAS picks for this CPU when neither pinning variable is set ('unknown' if that fails)."""
    env = {k: v for k, v in os.environ.items() if k not in PINNING}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", "from bench.blas import kernel; print(kernel())"],
                          env=env, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def describe():
    """One line: the kernel this benchmark runs and, if the environment pinned it, the CPU's own."""
    running = kernel()
    pinned = {k: os.environ[k] for k in PINNING if k in os.environ}
    if not pinned:
        return f"OpenBLAS kernel {running} (the CPU's own choice)"
    own, settings = own_kernel(), " ".join(f"{k}={v}" for k, v in pinned.items())
    if own == running:
        return f"OpenBLAS kernel {running} ({settings} is set; the CPU's own choice is the same)"
    if own == "unknown":
        return f"OpenBLAS kernel {running}, pinned by {settings} (the CPU's own choice could not be found out)"
    return (f"OpenBLAS kernel {running}, pinned by {settings}; this CPU's own would be {own}: "
            f"to time that one, run `make bench` (it unsets both) or prefix the command with "
            f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`")
