"""The notebooks under nbval as other CPUs run them (make test-cpus).

OpenBLAS picks its kernels by CPU and numpy its SIMD paths, and results move in the last
digits; the committed outputs must pass on any x86-64 machine. Each entry below runs
`pytest --nbval notebooks` with one choice forced, after checking (with threadpoolctl, or
numpy's dispatch table) that the choice really took effect. A kernel this CPU cannot run
(Haswell needs AVX2, SkylakeX AVX-512) is skipped with the reason.

    python tests/cpu_matrix.py                       # every entry
    python tests/cpu_matrix.py Sandybridge native    # some of them
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NPY_BASELINE = "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"
# name: (environment changes, the CPU flag it needs, the OpenBLAS core threadpoolctl must report)
ENTRIES = {
    "Prescott": ({"OPENBLAS_CORETYPE": "Prescott"}, None, "Katmai"),  # threadpoolctl names this kernel Katmai
    "Sandybridge": ({"OPENBLAS_CORETYPE": "Sandybridge"}, "avx", "Sandybridge"),
    "Haswell": ({"OPENBLAS_CORETYPE": "Haswell"}, "avx2", "Haswell"),
    "SkylakeX": ({"OPENBLAS_CORETYPE": "SkylakeX"}, "avx512f", "SkylakeX"),
    "native": ({"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}, None, None),
    "npy-baseline": ({"NPY_DISABLE_CPU_FEATURES": NPY_BASELINE}, None, None),
}
PROBE = ("import json, numpy, threadpoolctl\n"
         "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
         "print(json.dumps({'blas': [i.get('architecture') for i in threadpoolctl.threadpool_info()"
         " if i.get('internal_api') == 'openblas'], 'V3': f.get('X86_V3'), 'AVX2': f.get('AVX2')}))")


def cpu_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


def environment(changes):
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def probe(env):
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def run(name, extra_args=()):
    """Run one entry; returns 'passed', 'failed' or 'skipped: reason'."""
    changes, flag, core = ENTRIES[name]
    if flag and flag not in cpu_flags():
        return f"skipped: this CPU has no {flag.upper()}, which the {name} kernel needs"
    env = environment(changes)
    seen = probe(env)
    if core and seen["blas"] != [core]:
        return f"failed: asked for OpenBLAS {name}, but {seen['blas']} ran"
    if name == "npy-baseline" and seen["V3"]:
        return "failed: NPY_DISABLE_CPU_FEATURES did not take numpy off its AVX2 (X86_V3) paths"
    print(f"== {name}: OpenBLAS {seen['blas']}, numpy X86_V3 paths {'on' if seen['V3'] else 'off'}", flush=True)
    start = time.time()
    code = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "notebooks", "-q", "-p", "no:cacheprovider",
                           *extra_args], cwd=ROOT, env=env).returncode
    print(f"== {name}: exit {code} after {time.time() - start:.0f} s", flush=True)
    return "passed" if code == 0 else "failed"


def main(argv):
    names = argv or list(ENTRIES)
    unknown = [n for n in names if n not in ENTRIES]
    if unknown:
        sys.exit(f"unknown entries {unknown}; known: {', '.join(ENTRIES)}")
    results = {name: run(name) for name in names}
    for name, result in results.items():
        print(f"{name:13s} {result}")
    return 1 if any(r.startswith("failed") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
