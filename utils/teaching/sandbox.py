"""A Jupyter kernel for code we do not trust: its own process, its own empty folder, a memory limit,
and a time limit on every cell it runs.

The grader (utils/teaching/grader.py) runs a student's notebook cell by cell in one of these:

    with Sandbox(memory_mb=4096) as box:
        outcome = box.run("x = 1 + 1", timeout=120)   # Outcome(status="ok", ...)

- The kernel is the one the student used (ipykernel): magics, display() and inline figures work
  as they did for the student, which a plain `python` subprocess exec'ing the cells would not
  give; the kernel protocol also gives what the grader needs: an interrupt (SIGINT to the
  kernel's process group), liveness, and a channel for the grader's verdicts (display data).
- Its working directory is a new temporary folder, removed afterwards: a relative path in a cell
  (open("results.csv", "w"), os.remove("notes.txt")) lands there, never beside the notebook or in
  the teacher's folder. IPython's own files (history, profile) go to the same temporary place.
  The project is on PYTHONPATH, and its data folder is named by an absolute NN_DATA_DIR, so
  `import module` and the data loaders work as in the notebook's own folder.
- Memory: the kernel is started through `python -c "...setrlimit(RLIMIT_AS)...; os.execv(kernel)"`,
  so the limit holds from the kernel's first instruction, for it and every process it starts
  (soft = hard: the student's code cannot raise it again). An allocation beyond it raises
  MemoryError in the cell; NumPy imported costs about 1 GB of the address space already.
- Time: a cell still running after its timeout is interrupted (SIGINT, as the notebook's stop
  button does); if it has not stopped a few seconds later, the kernel is killed with its process
  group. Either way the outcome says "timeout"; `alive` says whether later cells can still run.
- A kernel that dies (os._exit, a segfault, killed) is noticed within a fraction of a second.
The kernel's own stdout and stderr go to a log file in the temporary folder, not to the
grader's terminal. What this does not stop (network, reading the teacher's files by absolute
path, fork bombs) is listed in grader.py's threat model.
"""
import collections
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jupyter_client.manager import KernelManager
from traitlets import Integer

from utils.plumbing import paths
from utils.plumbing.language import _

ROOT = Path(__file__).resolve().parents[2]
POLL = 0.2  # seconds between checks that the kernel still lives while a cell runs
GRACE = 5  # seconds an interrupted cell has to stop before the kernel is killed
START_TIMEOUT = 60  # seconds for the kernel to start and answer
MAX_ERROR_CHARS = 2000  # of a cell's error message kept

# Run by `python -c` before the kernel: set the limit, then become the kernel (same process id).
LIMIT_THEN_EXEC = ("import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_AS, (n, n)); "
                   "resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); os.execv(sys.argv[2], sys.argv[2:])")

Outcome = collections.namedtuple("Outcome", "status ename evalue data")
Outcome.__doc__ = """What running one cell gave.

status: "ok", "error" (it raised; ename and evalue say what), "timeout" (interrupted or killed
after its time limit) or "died" (the kernel process ended during the cell);
data: the payloads of the display() calls whose MIME type was asked for, in order."""


class SandboxError(RuntimeError):
    """The kernel could not be started."""


class _LimitedKernelManager(KernelManager):
    """The python3 kernel, started under an address-space limit (the command line wrapped)."""

    memory_mb = Integer(4096, help="the kernel's address-space limit (RLIMIT_AS), in MB")

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)  # [python, -m, ipykernel_launcher, -f, file]
        return [sys.executable, "-c", LIMIT_THEN_EXEC, str(self.memory_mb * 2 ** 20), sys.executable, *cmd[1:]]


def kernel_env(folder):
    """The environment of a kernel working in folder: the project importable, its outputs kept in folder."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["NN_DATA_DIR"] = str(paths.data_dir().resolve())  # absolute: the kernel's cwd is elsewhere
    env["NN_LOG_DIR"], env["NN_STATIC_DIR"] = str(folder / "log"), str(folder / "static")
    env["IPYTHONDIR"] = str(folder.parent / "ipython")  # not the teacher's history and startup files
    return env


class Sandbox:
    """A started kernel in a new temporary folder; use it in a with block, which removes both."""

    def __init__(self, memory_mb=4096, mime=None):
        self.memory_mb, self.mime = memory_mb, mime
        self.km = self.kc = None
        self.root = Path(tempfile.mkdtemp(prefix="nn-grade-"))
        self.folder = self.root / "work"  # the kernel's cwd; the log beside it, out of the student's sight
        self.folder.mkdir()

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        self.km = _LimitedKernelManager(kernel_name="python3", memory_mb=self.memory_mb)
        log = open(self.root / "kernel.log", "wb")  # the kernel's stdout and stderr; it keeps its own descriptor
        try:
            self.km.start_kernel(cwd=str(self.folder), env=kernel_env(self.folder), stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT)
            self.kc = self.km.client()
            self.kc.start_channels()
            self.kc.wait_for_ready(timeout=START_TIMEOUT)
        except (RuntimeError, OSError) as e:
            tail = (self.root / "kernel.log").read_bytes()[-500:].decode(errors="replace").strip()
            raise SandboxError((_("the kernel did not start ({error}): {log}") if tail else
                                _("the kernel did not start ({error})")).format(error=e, log=tail)) from None
        finally:
            log.close()

    @property
    def alive(self):
        return self.km is not None and self.km.is_alive()

    def run(self, code, timeout):
        """Run code in the kernel; an Outcome. Never raises for what the code does."""
        if not self.alive:
            return Outcome("died", "", "", [])
        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
        outcome = self._wait(msg_id, time.monotonic() + timeout)
        if outcome is None:  # over time: interrupt, as the stop button does, then kill if that is ignored
            try:
                self.km.interrupt_kernel()
                stopped = self._wait(msg_id, time.monotonic() + GRACE)
            except (RuntimeError, OSError):  # it ended meanwhile
                stopped = None
            if stopped is None or stopped.status == "died":
                self.kill()
            return Outcome("timeout", "", "", [])
        return outcome

    def _wait(self, msg_id, deadline):
        """The Outcome of message msg_id once the kernel is idle again; None at the deadline."""
        ename = evalue = ""
        data = []
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=min(POLL, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if not self.km.is_alive():
                    return Outcome("died", ename, evalue, data)
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                ename, evalue = str(content.get("ename", "")), str(content.get("evalue", ""))[:MAX_ERROR_CHARS]
            elif kind == "display_data" and self.mime in content.get("data", {}):
                data.append(content["data"][self.mime])
            elif kind == "status" and content.get("execution_state") == "idle":
                return Outcome("error" if ename else "ok", ename, evalue, data)
        return None

    def kill(self):
        """End the kernel and every process in its group, now."""
        if self.km is not None and self.km.has_kernel:
            self.km.shutdown_kernel(now=True)

    def close(self):
        if self.kc is not None:
            self.kc.stop_channels()
        self.kill()
        if self.km is not None:
            self.km.cleanup_resources()
        shutil.rmtree(self.root, ignore_errors=True)
