"""make run's scheduler: notebooks in parallel only where neither needs the other's results."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from utils.plumbing.run_notebooks import kernel_sockets, nbconvert, plan, run

NAMES = ["00_playground.ipynb", "01_data.ipynb", "02_search.ipynb", "03_training.ipynb", "04_testing.ipynb",
         "05_cnn.ipynb", "06_exercises.ipynb"]


def fake(tmp_path, fail=()):
    """A command that stands in for nbconvert: records its start and end in a file, sleeps a little."""
    record = tmp_path / "record.txt"

    def command(path):
        name = path[:2]
        code = (f"import time; open({str(record)!r}, 'a').write('start {name} %f\\n' % time.time()); "
                f"time.sleep(0.3); open({str(record)!r}, 'a').write('end {name} %f\\n' % time.time()); "
                f"raise SystemExit({1 if name in fail else 0})")
        return [sys.executable, "-c", code]

    def times():
        events = {}
        for line in record.read_text().splitlines():
            what, name, t = line.split()
            events[(what, name)] = float(t)
        return events
    return command, times


def overlap(t, a, b):
    return t[("start", a)] < t[("end", b)] and t[("start", b)] < t[("end", a)]


def test_notebooks_wait_for_what_they_read_and_the_search_runs_alone(tmp_path):
    command, times = fake(tmp_path)
    said = []
    assert run(NAMES, command, slots=2, say=said.append) == []
    t = times()
    assert len(t) == 2 * len(NAMES)  # every notebook ran once
    assert t[("start", "03")] >= t[("end", "02")]  # 03 reads the search results
    assert min(t[("start", "04")], t[("start", "05")]) >= t[("end", "03")]  # both read 03's weights
    assert not any(overlap(t, "02", other) for other in ("00", "01", "03", "04", "05", "06"))  # all cores
    assert overlap(t, "00", "01") and overlap(t, "04", "05")  # two at a time where free
    assert t[("start", "06")] >= t[("end", "02")]  # a later notebook does not overtake the waiting search
    assert sum("took" in line for line in said) == len(NAMES)


def test_a_failed_notebook_stops_what_needs_it_and_nothing_else(tmp_path):
    command, times = fake(tmp_path, fail={"03"})
    said = []
    failed = run(NAMES, command, slots=2, say=said.append)
    assert set(failed) == {"03_training.ipynb", "04_testing.ipynb", "05_cnn.ipynb"}
    t = times()
    assert ("start", "04") not in t and ("start", "05") not in t and ("end", "06") in t
    assert any("03_training.ipynb FAILED" in line for line in said)
    assert any("04_testing.ipynb not run: it needs 03_training.ipynb" in line for line in said)


def test_a_notebook_not_in_the_table_runs_alone_after_all_before_it():
    needs, alone = plan(NAMES + ["07_new.ipynb"])["07_new.ipynb"]
    assert needs == set(NAMES) and alone
    assert plan(NAMES)["05_cnn.ipynb"] == ({"03_training.ipynb"}, False)


@pytest.mark.skipif(os.name != "posix", reason="Unix domain sockets: elsewhere the kernels keep TCP ports")
def test_each_kernel_gets_sockets_of_its_own(tmp_path):
    # Over TCP two kernels starting together can draw the same free port; socket files cannot clash.
    command = kernel_sockets(tmp_path)
    first, second = command("notebooks/03_training.ipynb"), command("notebooks/06_exercises.ipynb")
    assert "--KernelManager.transport=ipc" in first and "--KernelManager.transport=ipc" in second
    ips = [next(a for a in c if a.startswith("--KernelManager.ip=")) for c in (first, second)]
    assert ips[0] != ips[1] and all(ip.startswith(f"--KernelManager.ip={tmp_path}") for ip in ips)
    assert nbconvert("x.ipynb")[-1] == "x.ipynb" and not any("KernelManager" in a for a in nbconvert("x.ipynb"))


@pytest.mark.skipif(os.name != "posix", reason="Unix domain sockets: elsewhere the kernels keep TCP ports")
def test_notebooks_started_together_all_run_on_sockets_of_their_own(tmp_path):
    # Four real kernels started in the same instant: each must start, and talk over its own socket files.
    paths = []
    for i in range(4):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("from ipykernel import get_connection_info\n"
                                              "info = get_connection_info(unpack=True)\n"
                                              "print(info['transport'], info['ip'])")]
        paths.append(tmp_path / f"9{i}_tiny.ipynb")  # not in NEEDS: each would run alone, so...
        nbformat.write(nb, paths[-1])
    with tempfile.TemporaryDirectory(prefix="kernels-") as folder:
        sockets = kernel_sockets(folder)
        processes = [subprocess.Popen(sockets(str(p)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                     for p in paths]  # ...they are started here by hand, all at once
        errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * len(paths), errors
    said = [nbformat.read(path, as_version=4).cells[0].outputs[0]["text"].split() for path in paths]
    assert all(transport == "ipc" and ip.startswith(str(Path(folder).resolve())) for transport, ip in said), said
    assert len({ip for _, ip in said}) == len(paths)  # no two kernels share a socket
