"""Execute the notebooks headless, as `make run` and `make run-zh` do: each one once, two at a time
where neither needs what the other writes.

    python -m utils.plumbing.run_notebooks notebooks/[0-9]*.ipynb

A notebook starts when the notebooks it reads from have finished (NEEDS: notebook 03 reads the
search results of 02; 04 and 05 read the weights 03 saves) and a core is free. (00 and 02 also
read 01's prepared data set when it is there, only as a cache: without it they prepare the same
arrays themselves, and 01 replaces the file atomically.) The search (02) starts a worker per core
itself, so it runs alone (ALONE), and nothing later in the list overtakes it while it waits. A
notebook this file does not know runs alone, after every notebook before it. Each prints
"== <name> took N s" when it ends. A failure prints its error and starts nothing that needs it;
the other notebooks still run, and the command then exits with status 1.

Each Jupyter kernel talks to nbconvert over Unix domain sockets (kernel_sockets: one temporary
folder per run, a name of its own per kernel), not over TCP ports: jupyter_client picks a
kernel's ports by binding free ones and letting them go before the kernel binds them, so two
notebooks starting together can draw the same port, and one kernel then dies with "Address
already in use" (seen in `make run`: 03 and 06 started in the same tenth of a second). A socket
file of its own per kernel cannot be drawn twice. (Unix only: elsewhere the kernels use TCP.)
"""
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEEDS = {"00": set(), "01": set(), "02": set(), "03": {"02"}, "04": {"03"}, "05": {"03"}, "06": set()}
ALONE = {"02"}


def nbconvert(path, record_timing=False, sockets=None):
    """The command that executes the notebook at path in place (its outputs replaced); record_timing
    stores each cell's start and end in its metadata (bench/bench_pipeline.py reads them); sockets,
    a path prefix no other kernel uses, puts the kernel on Unix domain sockets instead of TCP ports."""
    ipc = ["--KernelManager.transport=ipc", f"--KernelManager.ip={sockets}"] if sockets else []
    return [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
            "--ExecutePreprocessor.timeout=1800", f"--ExecutePreprocessor.record_timing={record_timing}", *ipc,
            str(path)]


def kernel_sockets(folder):
    """The default command of run(): nbconvert with each notebook's kernel on sockets of its own in
    folder (Unix only: elsewhere TCP ports, as Jupyter does by default)."""
    folder, numbers = Path(folder).resolve(), itertools.count()  # absolute: the kernel runs in the notebook's folder

    def command(path):
        return nbconvert(path, sockets=folder / f"kernel{next(numbers)}" if os.name == "posix" else None)
    return command


def plan(paths):
    """{path: (the paths it waits for, runs alone)} for the notebooks, keyed by their two-digit prefix."""
    keys = {Path(p).name[:2]: p for p in paths}
    result = {}
    for i, path in enumerate(paths):
        key = Path(path).name[:2]
        if key in NEEDS:
            result[path] = ({keys[k] for k in NEEDS[key] if k in keys}, key in ALONE)
        else:  # unknown: after every notebook before it, alone
            result[path] = (set(paths[:i]), True)
    return result


def run(paths, command=None, slots=None, say=print):
    """Execute the notebooks (in the order given where free to choose); returns the ones that failed.
    command(path) gives the command line for one notebook (default: nbconvert, kernel_sockets)."""
    if command is None:
        with tempfile.TemporaryDirectory(prefix="kernels-") as folder:
            return run(paths, kernel_sockets(folder), slots, say)
    paths = [str(p) for p in paths]
    todo, running, done, failed = plan(paths), {}, set(), []
    slots = max(1, min(2, len(os.sched_getaffinity(0))) if slots is None else slots)
    while todo or running:
        for path, (needs, alone) in list(todo.items()):
            if needs & set(failed):
                say(f"== {path} not run: it needs {', '.join(sorted(needs & set(failed)))}")
                failed.append(path)
                del todo[path]
            elif alone and needs <= done and running:
                break  # it waits for a free machine: nothing after it may take the cores first
            elif needs <= done and len(running) < (1 if alone else slots) \
                    and not any(other_alone for *_, other_alone in running.values()):
                say(f"== {path}")
                log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a long traceback cannot block it
                process = subprocess.Popen(command(path), stdout=log, stderr=subprocess.STDOUT, text=True)
                running[path] = process, log, time.perf_counter(), alone
                del todo[path]
        time.sleep(0.1)
        for path, (process, log, start, _) in list(running.items()):
            if process.poll() is None:
                continue
            log.seek(0)
            output = log.read()
            log.close()
            del running[path]
            if process.returncode:
                say(f"{output}== {path} FAILED (exit code {process.returncode})")
                failed.append(path)
            else:
                say(f"== {path} took {time.perf_counter() - start:.0f} s")
                done.add(path)
    return failed


def main():
    paths = sys.argv[1:]
    if not paths:
        sys.exit("usage: python -m utils.plumbing.run_notebooks NOTEBOOK.ipynb ...")
    start = time.perf_counter()
    failed = run(paths)
    print(f"== {len(paths) - len(failed)} of {len(paths)} notebooks in {time.perf_counter() - start:.0f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
