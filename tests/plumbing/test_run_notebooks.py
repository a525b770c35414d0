"""make run's scheduler: notebooks in parallel only where neither needs the other's results."""
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest

import utils.plumbing.execute as execute_module
from utils.plumbing.execute import WaitedInVain, execute, gate, look_again
from utils.plumbing.run_notebooks import execute_command, kernel_sockets, plan, run

NAMES = ["00_playground.ipynb", "01_data.ipynb", "02_search.ipynb", "03_training.ipynb", "04_testing.ipynb",
         "05_cnn.ipynb", "06_exercises.ipynb"]


def notebooks(tmp_path, names=NAMES, tags=None):
    """Empty notebooks with these names in tmp_path; tags: {name: tags of its one code cell}."""
    paths = []
    for name in names:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("1", metadata={"tags": (tags or {}).get(name, [])})]
        paths.append(tmp_path / name)
        nbformat.write(nb, paths[-1])
    return [str(p) for p in paths]


LENET_AFTER_MLP = {"05_cnn.ipynb": ["after-03"]}  # as in notebooks/: 05's comparison waits for 03


def fake(tmp_path, fail=(), seconds=None):
    """A command that stands in for execute.py: records its start and end in a file, sleeps a little
    (seconds: {key: seconds}, else 0.3), and, as a cell tagged after-NN would, waits for NN.done
    before its end."""
    record = tmp_path / "record.txt"

    def command(path, signals, wait_for):
        name = Path(path).name[:2]
        wait = "".join(f"while not os.path.exists(os.path.join({str(signals)!r}, '{key}.done')):\n"
                       f"    if os.path.exists(os.path.join({str(signals)!r}, '{key}.failed')): raise SystemExit(1)\n"
                       f"    time.sleep(0.05)\n" for key in sorted(wait_for))
        code = (f"import os, time\nopen({str(record)!r}, 'a').write('start {name} %f\\n' % time.time())\n"
                f"time.sleep({(seconds or {}).get(name, 0.3)})\n{wait}open({str(record)!r}, 'a').write('end {name} %f\\n' % time.time())\n"
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


def finishes(function, *args, seconds=120, **kwargs):
    """function(*args, **kwargs), failing the test (instead of hanging it) if it takes over seconds;
    what it raises is raised here."""
    outcome = []

    def call():
        try:
            outcome.append((True, function(*args, **kwargs)))
        except BaseException as error:  # handed to the test's thread
            outcome.append((False, error))
    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"{function.__name__} did not finish within {seconds} s"
    returned, value = outcome[0]
    if not returned:
        raise value
    return value


def test_notebooks_wait_for_what_they_read_and_the_search_runs_alone(tmp_path):
    command, times = fake(tmp_path, seconds={"03": 1.5})  # 05 would end first if its tagged cell did not wait
    said = []
    assert run(notebooks(tmp_path, tags=LENET_AFTER_MLP), command, slots=2, say=said.append) == []
    t = times()
    assert len(t) == 2 * len(NAMES)  # every notebook ran once
    assert t[("start", "03")] >= t[("end", "02")]  # 03 reads the search results
    assert t[("start", "04")] >= t[("end", "03")]  # 04 reads 03's weights
    assert overlap(t, "03", "05")  # 05 trains beside 03...
    assert t[("end", "05")] >= t[("end", "03")]  # ...and its tagged cell waits for 03's end
    assert not any(overlap(t, "02", other) for other in ("00", "01", "03", "04", "05", "06"))  # all cores
    assert overlap(t, "00", "01")  # two at a time where free
    assert t[("start", "06")] >= t[("end", "02")]  # a later notebook does not overtake the waiting search
    assert sum("took" in line for line in said) == len(NAMES)


def test_on_one_core_a_notebook_never_waits_for_one_that_has_not_started(tmp_path):
    # 05 waits midway for 03: started first on the only core, it would wait for ever.
    command, times = fake(tmp_path)
    paths = notebooks(tmp_path, ["05_cnn.ipynb", "03_training.ipynb"], tags=LENET_AFTER_MLP)
    assert finishes(run, paths, command, slots=1, say=lambda line: None) == []
    t = times()
    assert t[("start", "05")] >= t[("end", "03")]


def test_a_failed_notebook_stops_what_needs_it_and_nothing_else(tmp_path):
    command, times = fake(tmp_path, fail={"03"})
    said = []
    failed = run(notebooks(tmp_path, tags=LENET_AFTER_MLP), command, slots=2, say=said.append)
    assert {Path(p).name for p in failed} == {"03_training.ipynb", "04_testing.ipynb", "05_cnn.ipynb"}
    t = times()
    assert ("start", "04") not in t and ("end", "06") in t
    assert ("start", "05") in t and ("end", "05") not in t  # started beside 03, it failed at its tagged cell
    assert any("03_training.ipynb FAILED" in line for line in said)
    assert any("04_testing.ipynb not run: it needs" in line and "03_training.ipynb" in line for line in said)


def test_a_notebook_whose_tagged_cell_needs_a_failed_one_is_not_started(tmp_path):
    command, times = fake(tmp_path, fail={"03"})
    paths = notebooks(tmp_path, ["03_training.ipynb", "05_cnn.ipynb"], tags=LENET_AFTER_MLP)
    said = []
    assert run(paths, command, slots=1, say=said.append) == paths
    assert ("start", "05") not in times()
    assert any("05_cnn.ipynb not run: it needs" in line for line in said)


def test_a_notebook_not_in_the_table_runs_alone_after_all_before_it(tmp_path):
    paths = notebooks(tmp_path, NAMES + ["07_new.ipynb"], tags=LENET_AFTER_MLP)
    needs, alone, midway = plan(paths)[paths[-1]]
    assert needs == set(paths[:-1]) and alone and not midway
    assert plan(paths)[paths[5]] == (set(), False, {paths[3]})  # 05: from the start; its tagged cell after 03


@pytest.mark.parametrize("edition", ["notebooks", "notebooks/zh"])
def test_the_notebooks_tag_the_first_cell_that_reads_another_notebooks_results(edition):
    # make run starts 05 beside 03: every cell of 05 that reads 03's checkpoint must come after the tag.
    nb = nbformat.read(Path(__file__).parents[2] / edition / "05_convolutional_network.ipynb", as_version=4)
    tagged = [i for i, cell in enumerate(nb.cells) if "after-03" in cell.metadata.get("tags", [])]
    reading = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and 'mlp_cfg["checkpoint"]' in cell.source]
    assert tagged and reading and min(reading) >= tagged[0]


@pytest.mark.skipif(os.name != "posix", reason="Unix domain sockets: elsewhere the kernels keep TCP ports")
def test_each_kernel_gets_sockets_of_its_own(tmp_path):
    # Over TCP two kernels starting together can draw the same free port; socket files cannot clash.
    command = kernel_sockets(tmp_path)
    first, second = command("notebooks/03_training.ipynb"), command("notebooks/06_exercises.ipynb")
    ips = [next(a for a in c if a.startswith("--sockets=")) for c in (first, second)]
    assert ips[0] != ips[1] and all(ip.startswith(f"--sockets={tmp_path}") for ip in ips)
    assert not any(a.startswith("--sockets") for a in execute_command("x.ipynb"))


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


def test_a_tagged_cell_waits_for_the_end_of_the_notebook_it_names(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\nstart = time.perf_counter()"),
                nbformat.v4.new_code_cell("print(time.perf_counter() - start)", metadata={"tags": ["after-03"]})]
    path = tmp_path / "05_cnn.ipynb"
    nbformat.write(nb, path)
    announce = threading.Timer(3.0, (tmp_path / "03.done").touch)
    announce.start()
    execute(path, signals=tmp_path, keys=["03"])
    waited = float(nbformat.read(path, as_version=4).cells[1].outputs[0]["text"])
    assert waited > 1.0  # the kernel started, ran the first cell, then the second waited for 03.done
    (tmp_path / "03.done").unlink()
    execute(path)  # run alone, nothing to wait for: the cell reads what is there
    assert float(nbformat.read(path, as_version=4).cells[1].outputs[0]["text"]) < 1.0


def test_a_tagged_cell_fails_if_the_notebook_it_names_failed(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('never')", metadata={"tags": ["after-03"]})]
    path = tmp_path / "05_cnn.ipynb"
    nbformat.write(nb, path)
    before = path.read_bytes()
    (tmp_path / "03.failed").touch()
    with pytest.raises(WaitedInVain, match="tagged after-03.*notebook 03 failed"):
        execute(path, signals=tmp_path, keys=["03"])
    assert path.read_bytes() == before  # the notebook is left as it was


def test_a_cycle_of_waits_or_a_mistyped_tag_is_an_error_not_a_hang(tmp_path):
    with pytest.raises(ValueError, match="05_cnn.ipynb would wait for itself"):
        plan(notebooks(tmp_path, ["03_training.ipynb", "05_cnn.ipynb"], tags={"05_cnn.ipynb": ["after-05"]}))
    with pytest.raises(ValueError, match="02_search.ipynb would wait for itself"):  # 02 after 03, 03 needs 02
        plan(notebooks(tmp_path, ["02_search.ipynb", "03_training.ipynb"], tags={"02_search.ipynb": ["after-03"]}))
    with pytest.raises(ValueError, match="tagged after-3; expected after- and a notebook's two digits"):
        plan(notebooks(tmp_path, ["03_training.ipynb", "05_cnn.ipynb"], tags={"05_cnn.ipynb": ["after-3"]}))


def test_a_waiting_cell_gives_up_when_the_run_that_started_it_is_gone(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('never')", metadata={"tags": ["after-03"]})]
    path = tmp_path / "05_cnn.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(WaitedInVain, match="the run that started this notebook has ended"):
        finishes(execute, path, signals=tmp_path / "removed", keys=["03"])  # the scheduler's folder is gone


def test_a_waiting_cell_gives_up_when_its_scheduler_has_died(tmp_path, monkeypatch):
    # The scheduler is this process's parent: if it dies, the process is handed to another parent.
    wait = gate(tmp_path, ["03"])
    monkeypatch.setattr(os, "getppid", lambda: -1)
    cell = nbformat.v4.new_code_cell("compare()", metadata={"tags": ["after-03"]})
    with pytest.raises(WaitedInVain, match="'compare\\(\\)' is tagged after-03.*the run that started this notebook has ended"):
        finishes(asyncio.run, wait(cell=cell, cell_index=0), seconds=10)


def test_a_notebook_is_executed_with_its_reply_and_outputs_looked_for_in_steps(tmp_path, monkeypatch):
    installed = []
    monkeypatch.setattr(execute_module, "look_again", lambda channel: installed.append(channel))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    nbformat.write(nb, tmp_path / "00_tiny.ipynb")
    execute(tmp_path / "00_tiny.ipynb")
    assert nbformat.read(tmp_path / "00_tiny.ipynb", as_version=4).cells[0].outputs[0]["text"] == "42\n"
    assert [type(channel).__name__ for channel in installed] == ["AsyncZMQSocketChannel"] * 2  # shell and iopub


def test_the_reply_of_a_cell_is_looked_for_in_short_steps_until_the_timeout():
    # Waits of at most `step` seconds, Empty only at the deadline (utils/plumbing/execute.py says why).
    calls = []

    class Channel:
        async def get_msg(self, timeout=None):
            calls.append(timeout)
            await asyncio.sleep(timeout)
            if len(calls) < 3:
                raise Empty
            return {"reply": True}

    channel = Channel()
    look_again(channel, step=0.01)
    assert asyncio.run(channel.get_msg(timeout=60)) == {"reply": True}
    assert len(calls) == 3 and max(calls) <= 0.01  # looked three times, none longer than a step
    calls.clear()
    assert asyncio.run(channel.get_msg(timeout=None)) == {"reply": True}  # None: steps for ever
    calls.clear()
    start = time.perf_counter()
    with pytest.raises(Empty):
        asyncio.run(channel.get_msg(timeout=0.015))  # the deadline comes before the third look
    assert time.perf_counter() - start < 1 and len(calls) == 2 and calls[-1] <= 0.005 + 1e-9
