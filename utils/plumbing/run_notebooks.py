"""Execute the notebooks headless, as `make run` and `make run-zh` do: each one once, two at a time
where neither needs what the other writes (or needs it only in cells that wait for it).

    python -m utils.plumbing.run_notebooks notebooks/[0-9]*.ipynb

A notebook starts when the notebooks it reads from have finished (NEEDS: notebook 03 reads the
search results of 02; 04 reads the weights 03 saves) and a core is free. A notebook that reads
another one's results only in its last cells starts beside it instead: those cells carry the tag
"after-NN" and wait, in their own process, until notebook NN has finished (execute.py). So
notebook 05 trains LeNet-5 while 03 trains the MLP, and only its comparison with the MLP waits,
until 03 has finished; it starts once 03 has started, so that a single core cannot deadlock. (00 and 02
also read 01's prepared data set when it is there, only as a cache: without it they prepare the
same arrays themselves, and 01 replaces the file atomically.) The search (02) starts a worker per
core itself, so it runs alone (ALONE), and nothing later in the list overtakes it while it waits.
A notebook this file does not know runs alone, after every notebook before it. Each prints
"== <name> took N s" when it ends. A failure prints its error and starts nothing that needs it
(a cell waiting for it fails); the other notebooks still run, and the command then exits with
status 1.

Each Jupyter kernel talks to its client over Unix domain sockets (kernel_sockets: one temporary
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

from utils.plumbing.execute import tagged_keys

NEEDS = {"00": set(), "01": set(), "02": set(), "03": {"02"}, "04": {"03"}, "05": set(), "06": set()}
ALONE = {"02"}


def key(path):
    """A notebook's key in NEEDS, in its after-NN tags and in the run's signal files: the two digits
    its file name starts with ("03")."""
    return Path(path).name[:2]


def execute_command(path, record_timing=False, sockets=None, signals=None, wait_for=()):
    """The command that executes the notebook at path in place (its outputs replaced), execute.py's:
    record_timing stores each cell's start and end in its metadata (bench/bench_pipeline.py reads
    them); sockets, a path prefix no other kernel uses, puts the kernel on Unix domain sockets instead
    of TCP ports; cells tagged after-NN, NN in wait_for, wait for NN.done in the folder signals."""
    return [sys.executable, "-m", "utils.plumbing.execute", str(path),
            *(["--record-timing"] if record_timing else []), *([f"--sockets={sockets}"] if sockets else []),
            *([f"--signals={signals}", f"--wait-for={','.join(sorted(wait_for))}"] if wait_for else [])]


def kernel_sockets(folder):
    """The default command of run(): execute_command with each notebook's kernel on sockets of its own
    in folder (Unix only: elsewhere TCP ports, as Jupyter does by default)."""
    folder, numbers = Path(folder).resolve(), itertools.count()  # absolute: the kernel runs in the notebook's folder

    def command(path, signals=None, wait_for=()):
        sockets = folder / f"kernel{next(numbers)}" if os.name == "posix" else None
        return execute_command(path, sockets=sockets, signals=signals, wait_for=wait_for)
    return command


def plan(paths):
    """{path: (the paths it waits for, runs alone, the paths its tagged cells wait for)} for the
    notebooks, keyed by their two-digit prefix; the tags are read from the notebook files."""
    keys = {key(p): p for p in paths}
    result = {}
    for i, path in enumerate(paths):
        midway = {keys[k] for k in tagged_keys(path) if k in keys}
        if key(path) in NEEDS:
            result[path] = ({keys[k] for k in NEEDS[key(path)] if k in keys}, key(path) in ALONE, midway)
        else:  # unknown: after every notebook before it, alone
            result[path] = (set(paths[:i]), True, midway)
    for path in result:  # one that waits for itself, through others or not, would wait for ever
        reached, todo = set(), [path]
        while todo:
            needs, _, midway = result[todo.pop()]
            if path in needs | midway:
                raise ValueError(f"{path} would wait for itself: NEEDS in {__name__} and the notebooks' "
                                 "after-NN tags make a cycle")
            todo += sorted((needs | midway) - reached)
            reached |= needs | midway
    return result


def run(paths, command=None, slots=None, say=print):
    """Execute the notebooks (in the order given where free to choose); returns the ones that failed.
    command(path, signals, wait_for) gives the command line for one notebook (default: execute.py's,
    kernel_sockets); signals is the folder where this run announces each notebook's end (NN.done or
    NN.failed), wait_for the keys of the notebooks the tagged cells must wait for."""
    with tempfile.TemporaryDirectory(prefix="kernels-") as folder:
        return _run([str(p) for p in paths], command or kernel_sockets(folder), Path(folder), slots, say)


def _run(paths, command, signals, slots, say):
    todo, running, started, done, failed = plan(paths), {}, set(), set(), []
    slots = max(1, min(2, len(os.sched_getaffinity(0))) if slots is None else slots)
    while todo or running:
        for path, (needs, alone, midway) in list(todo.items()):
            if (needs | midway) & set(failed):
                say(f"== {path} not run: it needs {', '.join(sorted((needs | midway) & set(failed)))}")
                failed.append(path)
                del todo[path]
            elif alone and needs <= done and running:
                break  # it waits for a free machine: nothing after it may take the cores first
            elif needs <= done and midway <= started and len(running) < (1 if alone else slots) \
                    and not any(other_alone for *_, other_alone in running.values()):
                say(f"== {path}")
                log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a long traceback cannot block it
                wait_for = {key(p) for p in midway - done}
                process = subprocess.Popen(command(path, signals, wait_for), stdout=log, stderr=subprocess.STDOUT,
                                           text=True)
                running[path] = process, log, time.perf_counter(), alone
                started.add(path)
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
            (signals / f"{key(path)}.{'failed' if process.returncode else 'done'}").touch()
    return failed


def main():
    paths = sys.argv[1:]
    if not paths:
        sys.exit("usage: python -m utils.plumbing.run_notebooks NOTEBOOK.ipynb ...")
    start = time.perf_counter()
    try:
        failed = run(paths)
    except ValueError as error:  # a cycle of waits, a mistyped after-NN tag: nothing has started
        sys.exit(f"make run: {error}")
    print(f"== {len(paths) - len(failed)} of {len(paths)} notebooks in {time.perf_counter() - start:.0f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
