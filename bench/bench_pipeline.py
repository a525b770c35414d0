"""Benchmark of the whole pipeline: the 48-point grid search and `make run`, with peak memory.

    python -m bench.bench_pipeline              # both
    python -m bench.bench_pipeline --search     # only the search (into a temporary folder)

The search runs configs/search_fashion.toml (4 learning rates x 3 layer sizes x 4 L2 strengths,
pruned, as notebook 02 runs it), with 1 worker and with all cores, each into a fresh temporary
folder, so the speed-up of the parallel workers shows. `make run` executes the notebooks
for real, as a user would, and so rewrites them with fresh outputs. Peak memory is the
largest resident set of any process the command started (getrusage of the children).
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command):
    """(seconds, peak RSS in MiB, output) of command, measured in a fresh process so no earlier run counts."""
    out = subprocess.run([sys.executable, "-m", "bench.bench_pipeline", "--measure", *command],
                         check=True, capture_output=True, text=True).stdout.splitlines()
    seconds, rss = out[-1].split()
    return float(seconds), float(rss), out[:-1]


def measure(command):
    """Run command; print its output, then its seconds and the largest resident set of any of its processes."""
    start = time.perf_counter()
    subprocess.run(command, check=True)
    print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", action="store_true", help="only the grid search")
    parser.add_argument("--run", action="store_true", help="only make run")
    parser.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure)
    both = not (args.search or args.run)
    rows = []
    if args.search or both:
        for workers in (1, os.cpu_count()):
            with tempfile.TemporaryDirectory() as out:
                seconds, rss, _ = timed([sys.executable, "-m", "utils", "search", "--quiet",
                                         "--workers", str(workers), "--out", out])
            rows.append((f"48-point grid search, {workers} worker{'s' * (workers > 1)}", seconds, rss))
    if args.run or both:
        seconds, rss, output = timed(["make", "run"])
        # make run prints "== notebooks/<name>.ipynb took <n> s" after each notebook.
        for line in output:
            if line.startswith("== ") and line.endswith(" s") and " took " in line:
                name, took = line[3:].rsplit(" took ", 1)
                rows.append((f"  {Path(name).stem}", float(took[:-2]), None))
        rows.append(("make run (all notebooks, with set-up)", seconds, rss))
    print(f"{os.cpu_count()} cores")
    print(f"{'':<40}{'seconds':>9}{'peak RSS MiB':>14}")
    for name, seconds, rss in rows:
        print(f"{name:<40}{seconds:>9.1f}" + (f"{rss:>14.0f}" if rss is not None else ""))


if __name__ == "__main__":
    main()
