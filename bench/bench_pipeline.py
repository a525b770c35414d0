"""Benchmark of the whole pipeline: the 48-point grid search and `make run`, with peak memory.

    python -m bench.bench_pipeline              # both
    python -m bench.bench_pipeline --search     # only the search (into a temporary folder)
    python -m bench.bench_pipeline --cells      # each notebook in a throwaway copy: wall and CPU
                                                # seconds, and the cells that take the most

The search runs configs/search_fashion.toml (4 learning rates x 3 layer sizes x 4 L2 strengths,
pruned, as notebook 02 runs it), with 1 worker and with all cores, each into a fresh temporary
folder, so the speed-up of the parallel workers shows. `make run` executes the notebooks
for real, as a user would, and so rewrites them with fresh outputs. Peak memory is the
largest resident set of any process the command started (getrusage of the children).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench import blas
from utils.plumbing.run_notebooks import execute_command

ROOT = Path(__file__).resolve().parents[1]


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


def cell_seconds(notebook):
    """[(seconds, cell index, first line)] of an executed notebook's code cells (record_timing's stamps)."""
    rows = []
    for i, cell in enumerate(json.loads(Path(notebook).read_text())["cells"]):
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start, end = (datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            rows.append(((end - start).total_seconds(), i, "".join(cell["source"]).split("\n")[0][:70]))
    return rows


def notebook_cells(top, pattern="[0-9]*"):
    """Execute every notebook, one after another, in a throwaway copy of the project (its notebooks,
    log/ and static/ are not touched), with the copy's code first on the path; print per notebook
    the wall and CPU seconds (the kernel and its workers included) and its slowest cells."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "project"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "data", "__pycache__"))
        env = {**os.environ, "PYTHONPATH": str(copy)}
        subprocess.run([sys.executable, "-m", "utils", "data"], cwd=copy, env=env, check=True, capture_output=True)
        print(f"{'notebook':<34}{'wall s':>8}{'CPU s':>8}")
        for notebook in sorted((copy / "notebooks").glob(f"{pattern}.ipynb")):
            before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            subprocess.run(execute_command(notebook, record_timing=True), cwd=copy, env=env, check=True,
                           capture_output=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            print(f"{notebook.stem:<34}{time.perf_counter() - start:>8.1f}{cpu:>8.1f}")
            for seconds, i, line in sorted(cell_seconds(notebook), reverse=True)[:top]:
                print(f"    cell {i:>3} {seconds:>7.1f} s  {line}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", action="store_true", help="each notebook in a copy, with its slowest cells")
    parser.add_argument("--top", type=int, default=5, help="cells shown per notebook with --cells")
    parser.add_argument("--only", default="[0-9]*", help="with --cells: the notebooks to run, e.g. 06*")
    parser.add_argument("--search", action="store_true", help="only the grid search")
    parser.add_argument("--run", action="store_true", help="only make run")
    parser.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure)
    if args.cells:
        return notebook_cells(args.top, args.only)
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
    print(f"{os.cpu_count()} cores; {blas.describe()}")
    print(f"{'':<40}{'seconds':>9}{'peak RSS MiB':>14}")
    for name, seconds, rss in rows:
        print(f"{name:<40}{seconds:>9.1f}" + (f"{rss:>14.0f}" if rss is not None else ""))


if __name__ == "__main__":
    main()
