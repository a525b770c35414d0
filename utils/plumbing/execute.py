"""Execute one notebook headless and store its outputs in it, as `jupyter nbconvert --execute --inplace`
does, with one addition: a code cell tagged "after-NN" waits until notebook NN of the same `make run`
has finished.

    python -m utils.plumbing.execute notebooks/05_lenet5_cnn.ipynb

A notebook that reads another one's results only near its end can then start beside it: notebook 05
trains LeNet-5 while 03 trains the MLP, and its comparison with the MLP (the cell tagged after-03, in
JupyterLab's property inspector) waits for 03's checkpoint. The scheduler (run_notebooks.py) tells
this process which notebooks to wait for (--wait-for) and where their news appears (--signals: a
file NN.done or NN.failed per notebook that ended). Run alone, without --wait-for, no cell waits:
the notebook reads what is on disc, as it does in JupyterLab.
"""
import argparse
import asyncio
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from utils.plumbing.atomic import atomic_write

TAG = "after-"
TIMEOUT = 1800  # seconds one cell may take
POLL = 0.2      # seconds between two looks at the signals folder


class WaitedInVain(RuntimeError):
    """A cell waited for a notebook that failed."""


def waits_for(cell):
    """The notebook keys ("03") a cell's tags say it must wait for."""
    return {tag[len(TAG):] for tag in cell.get("metadata", {}).get("tags", []) if tag.startswith(TAG)}


def tagged_keys(path):
    """Every notebook key some cell of the notebook at path waits for."""
    return set().union(*(waits_for(cell) for cell in nbformat.read(path, as_version=4).cells))


def gate(signals, keys):
    """An nbclient on_cell_start hook: before a cell tagged after-NN (NN in keys) runs, wait for the
    file NN.done in the folder signals; NN.failed stops the notebook with an error that says why."""
    async def wait(cell, cell_index):
        for key in sorted(waits_for(cell) & set(keys)):
            while not (Path(signals) / f"{key}.done").exists():
                if (Path(signals) / f"{key}.failed").exists():
                    raise WaitedInVain(f"cell {cell_index} is tagged {TAG}{key}: it reads what notebook {key} "
                                       f"writes, and notebook {key} failed in this run")
                await asyncio.sleep(POLL)
    return wait


def execute(path, record_timing=False, sockets=None, signals=None, keys=()):
    """Run every cell of the notebook at path in a fresh kernel (started in the notebook's folder) and
    replace the file, atomically, by the notebook with its new outputs. sockets: a path prefix no other
    kernel uses, to put the kernel on Unix domain sockets instead of TCP ports (run_notebooks.py says
    why). On an error the file is left as it was and CellExecutionError is raised."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    config = Config()
    if sockets:
        config.KernelManager.transport, config.KernelManager.ip = "ipc", str(sockets)
    client = NotebookClient(nb, timeout=TIMEOUT, record_timing=record_timing, config=config,
                            resources={"metadata": {"path": str(path.resolve().parent)}},
                            on_cell_start=gate(signals, keys) if keys else None)
    client.execute()
    with atomic_write(path, "w") as f:
        nbformat.write(nb, f)


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
        execute(args.notebook, args.record_timing, args.sockets, args.signals, keys)
    except (CellExecutionError, WaitedInVain) as error:
        sys.exit(f"{args.notebook}: {error}")


if __name__ == "__main__":
    main()
