"""Execute one notebook headless and store its outputs in it, as `jupyter nbconvert --execute --inplace`
does, with one addition: a code cell tagged "after-NN" waits until notebook NN of the same `make run`
has finished.

    python -m utils.plumbing.execute notebooks/05_convolutional_network.ipynb

A notebook that reads another one's results only near its end can then start beside it: notebook 05
trains LeNet-5 while 03 trains the MLP, and its comparison with the MLP (the cell tagged after-03, in
JupyterLab's property inspector) waits until 03 has finished. The scheduler (run_notebooks.py) tells
this process which notebooks to wait for (--wait-for) and where their news appears (--signals: a
file NN.done or NN.failed per notebook that ended). A waiting cell gives up with an error if that
notebook failed, or if the scheduler is gone (its folder removed, or this process orphaned). Run
alone, without --wait-for, no cell waits: the notebook reads what is on disc, as in JupyterLab.

One more difference from nbconvert: while a cell runs, its reply and its outputs are looked for once
a second (look_again), not in one wait as long as the cell's timeout. A `make run` with nbconvert
once stopped in notebook 05's interact cell: the kernel was idle, waiting for requests, while
nbclient (inside nbconvert) still waited for that cell to finish, and would have until the cell's
timeout, 30 minutes. Such stops in cells with widgets are reported upstream (nbclient issue 312,
nbconvert issues 2003 and 2029); for nbclient 312 the reporter's patch, not merged, waits in short
steps. Whether that prevents this stop is not shown (100 runs of a like cell with the long wait never
stopped); a short step costs nothing when the reply comes, and a new look sees a message already waiting.
"""
import argparse
import asyncio
import os
import re
import sys
from pathlib import Path
from queue import Empty
from time import monotonic

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from traitlets.config import Config

from utils.plumbing.atomic import atomic_write

TAG = "after-"
KEY = re.compile(r"\d\d")  # a notebook's key: the two digits its file name starts with
TIMEOUT = 1800  # seconds one cell may take
POLL = 0.2      # seconds between two looks at the signals folder
STEP = 1.0      # seconds: the longest a wait for the kernel's reply goes without looking again


class WaitedInVain(RuntimeError):
    """A cell waited for a notebook that failed, or for a scheduler that is gone."""


def waits_for(cell, where="the notebook"):
    """The notebook keys ("03") a cell's tags say it must wait for; a tag after-X whose X is not two
    digits is an error (a typo would otherwise make the cell read a result that is not there yet)."""
    keys = {tag[len(TAG):] for tag in cell.get("metadata", {}).get("tags", []) if tag.startswith(TAG)}
    for key in keys:
        if not KEY.fullmatch(key):
            raise ValueError(f"{where}: a cell is tagged {TAG}{key}; expected {TAG} and a notebook's two digits, "
                             f"as in {TAG}03")
    return keys


def tagged_keys(path):
    """Every notebook key some cell of the notebook at path waits for."""
    return set().union(*(waits_for(cell, path) for cell in nbformat.read(path, as_version=4).cells))


def gate(signals, keys):
    """An nbclient on_cell_start hook: before a cell tagged after-NN (NN in keys) runs, wait for the
    file NN.done in the folder signals; NN.failed, the folder gone or this process orphaned (the
    scheduler that would write the file has ended) stop the notebook with an error that says why."""
    signals, parent = Path(signals), os.getppid()

    async def wait(cell, cell_index):
        first_line = cell.source.split("\n")[0]
        for key in sorted(waits_for(cell) & set(keys)):
            while not (signals / f"{key}.done").exists():
                if (signals / f"{key}.failed").exists():
                    why = f"notebook {key} failed in this run"
                elif not signals.is_dir() or os.getppid() != parent:
                    why = "the run that started this notebook has ended"
                else:
                    await asyncio.sleep(POLL)
                    continue
                raise WaitedInVain(f"the cell starting {first_line!r} is tagged {TAG}{key}: it reads what "
                                   f"notebook {key} writes, and {why}")
    return wait


def look_again(channel, step=STEP):
    """Make channel.get_msg(timeout) look for a message every step seconds until timeout (or for ever,
    for None) instead of in one wait (the module docstring says why). Raises queue.Empty at the
    deadline, as get_msg does."""
    get_msg = channel.get_msg

    async def stepwise(timeout=None):
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            try:
                return await get_msg(timeout=step if deadline is None else min(step, max(0.0, deadline - monotonic())))
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise
    channel.get_msg = stepwise


def execute(path, record_timing=False, sockets=None, signals=None, keys=()):
    """Run every cell of the notebook at path in a fresh kernel (started in the notebook's folder) and
    replace the file, atomically, by the notebook with its new outputs. sockets: a path prefix no other
    kernel uses, to put the kernel on Unix domain sockets instead of TCP ports (run_notebooks.py says
    why). On an error (a cell's exception or timeout, a dead kernel, a wait in vain) the file is left
    as it was and the error is raised."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    config = Config()
    if sockets:
        config.KernelManager.transport, config.KernelManager.ip = "ipc", str(sockets)
    client = NotebookClient(nb, timeout=TIMEOUT, record_timing=record_timing, config=config,
                            resources={"metadata": {"path": str(path.resolve().parent)}},
                            on_cell_start=gate(signals, keys) if keys else None)
    client.on_notebook_start = lambda notebook: [look_again(channel) for channel in (client.kc.shell_channel,
                                                                                     client.kc.iopub_channel)]
    client.execute()
    text = nbformat.writes(nb)
    with atomic_write(path) as f:  # bytes: UTF-8 whatever the locale, as nbconvert writes
        f.write((text if text.endswith("\n") else text + "\n").encode("utf-8"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("--record-timing", action="store_true", help="store each cell's start and end in its metadata")
    parser.add_argument("--sockets", help="the kernel on Unix domain sockets with this path prefix")
    parser.add_argument("--signals", help="the folder where NN.done or NN.failed appears when notebook NN ends")
    parser.add_argument("--wait-for", default="", help="comma-separated keys (03,...) whose cells tagged after-NN wait")
    args = parser.parse_args()
    keys = [key for key in args.wait_for.split(",") if key]
    if keys and not args.signals:
        parser.error("--wait-for needs --signals, the folder where the notebooks' ends are announced")
    try:
        tagged_keys(args.notebook)  # a mistyped tag is an error, whether or not this run waits
    except ValueError as error:  # its message names the notebook
        sys.exit(str(error))
    try:
        execute(args.notebook, args.record_timing, args.sockets, args.signals, keys)
    except (CellExecutionError, CellTimeoutError, DeadKernelError, WaitedInVain) as error:
        sys.exit(f"{args.notebook}: {error}")


if __name__ == "__main__":
    main()
