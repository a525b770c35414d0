"""The search under bad input and faults: clear errors, no overwritten results, a full disk, a killed parent."""
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from tests.search.test_search import ROOT, cli, grid_keys, load, points, prepared_data, quick_heartbeat, wait_for  # noqa: F401
from utils.plumbing.errors import ConfigError, SearchError
from utils.search import run as search
from utils.search import storage as search_storage

ONE_POINT = {"lr": [0.05], "hidden_sizes": [[8]], "l2_lambda": [0.0]}
TINY = dict(train_size=500, num_epochs=1, progress=False, workers=1)


def grid_config(path, name, lr=(0.1, 0.03, 0.01, 0.003), sizes=((32,), (16,)), epochs=3, train_size=2000):
    """A search config file with a small grid (prune off, so every trial runs all its epochs)."""
    path.write_text(f'name = "{name}"\nexperiment = "mlp_fashion"\n[search]\nnum_epochs = {epochs}\n'
                    f'train_size = {train_size}\nprune = false\n[search.space]\nlr = {list(lr)}\n'
                    f'hidden_sizes = {[list(s) for s in sizes]}\nl2_lambda = [1e-4]\n')
    return path


@pytest.mark.parametrize("kwargs, error, words", [
    ({"space": {}}, ConfigError, "search.space must be a table"),
    ({"space": {"lr": []}}, ConfigError, "expected a non-empty list"),
    ({"space": {"lr": 0.1}}, ConfigError, "expected a non-empty list"),
    ({"space": {"l2_lamda": [0.0]}}, ConfigError, "l2_lamda.*did you mean 'l2_lambda'"),
    ({"space": {"hidden_sizes": [[256, 0]]}}, ConfigError, "hidden_sizes = \\[256, 0\\]: expected a list"),
    ({"space": {"lr": [0.1, -0.1]}}, ConfigError, "lr = -0.1: expected a number in \\(0, "),
    ({"space": {"lr": [float("nan")]}}, ConfigError, "lr = nan"),
    ({"space": {"activation": ["relu", "swish"]}}, ConfigError, "activation = 'swish'"),
    ({"space": {"lr": {"low": 0.01, "high": 0.1}}}, ConfigError, "expected a non-empty list"),
    ({"mode": "tpe"}, ConfigError, "n_trials"),
    ({"mode": "random"}, ConfigError, "search.mode = 'random'"),
    ({"fixed": {"lr": 0.1}}, SearchError, "lr is both searched and fixed"),
    ({"fixed": {"nesterov": "no"}}, ConfigError, "nesterov = 'no': expected true or false"),
    ({"fixed": {"momentum": "0.9"}}, ConfigError, "momentum = '0.9': expected a number"),
    ({"fixed": {"num_epochs": 3}}, ConfigError, "settings of the search itself"),
    ({"fixed": {"dropuot": 0.1}}, ConfigError, "dropuot.*did you mean 'dropout'"),
    ({"fixed": {"optimizer": "adam", "nesterov": True}}, ConfigError, 'nesterov = true needs optimizer = "sgd"'),
    ({"fixed": ["dropout", 0.1]}, SearchError, "fixed must be a dict"),
    ({"train_size": 54001}, SearchError, "train_size=54001 is larger than the training set.*54,000"),
    ({"train_size": 5}, ConfigError, "train_size = 5"),
    ({"num_epochs": 0}, ConfigError, "num_epochs = 0"),
    ({"seed": -1}, ConfigError, "seed = -1"),
    ({"prune": "yes"}, ConfigError, "prune = 'yes'"),
    ({"workers": -1}, SearchError, "workers must be an integer >= 1"),
    ({"storage": "postgresql://nobody@127.0.0.1:1/none"}, SearchError, "cannot open the search storage"),
    ({"storage": "nosuchdb://host/db"}, SearchError, "cannot open the search storage nosuchdb"),
    ({"study_name": "a/b"}, SearchError, "study_name must be"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, kwargs, error, words):
    with pytest.raises(error, match=words):
        search.run_search(**{"space": ONE_POINT, "out_dir": tmp_path / "out", **TINY, **kwargs})
    assert not (tmp_path / "out").exists()  # no storage, no results


def _garbage(tmp_path):
    (tmp_path / "junk.db").write_bytes(b'{"op_code": 0, "worker_id": "x"}\n\xff\xfe torn')  # e.g. an old journal
    return {"storage": tmp_path / "junk.db"}, "junk.db is not an SQLite database"


def _corrupt_sqlite(tmp_path):
    (tmp_path / "bad.db").write_bytes(b"SQLite format 3\x00" + b"\x13" * 4000)
    return {"storage": tmp_path / "bad.db"}, "cannot open the search storage sqlite:///.*bad.db"


def _storage_under_a_file(tmp_path):
    (tmp_path / "plain").write_text("a file")
    return {"storage": tmp_path / "plain" / "search.db"}, "plain is a regular file, not a folder"


def _out_under_a_file(tmp_path):
    (tmp_path / "plain").write_text("a file")
    return {"out_dir": tmp_path / "plain" / "run"}, "plain is a regular file, not a folder"


def _storage_is_a_folder(tmp_path):
    (tmp_path / "folder.db").mkdir()
    return {"storage": tmp_path / "folder.db"}, "folder.db is not a regular file"


@pytest.mark.parametrize("case", [_garbage, _corrupt_sqlite, _storage_under_a_file, _out_under_a_file,
                                  _storage_is_a_folder])
def test_unusable_storage_or_folder_is_named(tmp_path, case):
    kwargs, words = case(tmp_path)
    with pytest.raises(SearchError, match=words):
        search.run_search(**{"space": ONE_POINT, "out_dir": tmp_path / "out", **TINY, **kwargs})


@pytest.mark.parametrize("args, words", [
    (["--fixed", "nesterov=no"], "nesterov = 'no': expected true or false"),
    (["--fixed", "batch_size=0"], "batch_size = 0"),
    (["--fixed", "lr=0.1"], "lr is both searched and fixed"),
    (["--fixed", "nonsense"], "expected KEY=VALUE"),
    (["--train-size", "60000"], "larger than the training set"),
    (["--config", "no_such_search"], "no config file at"),
    (["--config", "mlp_fashion"], "has no \\[search\\] table"),
])
def test_command_line_errors_are_one_line_without_traceback(tmp_path, capsys, args, words):
    with pytest.raises(SystemExit) as exit_:
        search.main([*args, "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert exit_.value.code != 0 and err.startswith("error: ") and "Traceback" not in err
    assert re.search(words, err), err
    assert not (tmp_path / "out").exists()


def test_command_line_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        search.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: python -m utils search")
    assert "(default: search_fashion)" in out and "(default: 1)" in out and "--overwrite" in out


def test_a_real_command_line_error_exits_non_zero(tmp_path):
    cmd, env = cli("--fixed", "nesterov=no", out=tmp_path / "out")
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "nesterov" in done.stderr and "Traceback" not in done.stderr


def test_existing_results_are_never_replaced_silently(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / search.RESULTS_CSV).write_text("committed results\n")
    with pytest.raises(SearchError, match=f"{out / search.RESULTS_CSV} exists.*--overwrite"):
        search.run_search(ONE_POINT, study_name="one", out_dir=out, **TINY)
    assert (out / search.RESULTS_CSV).read_text() == "committed results\n" and not (out / "search.db").exists()

    table = search.run_search(ONE_POINT, study_name="one", out_dir=out, overwrite=True, **TINY)
    assert len(pd.read_csv(out / search.RESULTS_CSV)) == len(table) == 1
    # Its own study's results are updated without the flag: that is resuming.
    search.run_search(ONE_POINT, study_name="one", out_dir=out, **TINY)
    with pytest.raises(SearchError, match="exists.*--overwrite"):  # another study's are not
        search.run_search(ONE_POINT, study_name="other", out_dir=out, **TINY)


def test_by_default_a_fresh_run_folder_and_never_log(tmp_path, monkeypatch):
    monkeypatch.setenv("NN_LOG_DIR", str(tmp_path / "log"))
    search.run_search(ONE_POINT, study_name="fresh", **TINY)
    search.run_search(ONE_POINT, study_name="fresh", **TINY)  # a second run: a second folder
    runs = sorted((tmp_path / "log" / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("fresh-") for r in runs)
    assert all((r / search.RESULTS_CSV).is_file() and (r / search.BEST_JSON).is_file() and (r / "search.db").is_file()
               for r in runs)
    assert {p.name for p in (tmp_path / "log").iterdir()} == {"runs"}  # nothing beside the run folders


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB tmpfs (root only); skipped where it cannot be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the disk-full test needs root")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk):
    with (disk / "filler").open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
        except OSError:
            pass


def test_a_full_disk_stops_the_search_and_a_rerun_loses_no_finished_trial(tmp_path, small_disk, quick_heartbeat):
    config = grid_config(tmp_path / "full.toml", "full")
    cmd, env = cli("--config", config, "--workers", 1, out=small_disk / "run")
    with (tmp_path / "err").open("w") as err:
        run = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: len(load(small_disk / "run", "full").get_trials(states=(TrialState.COMPLETE,))) >= 2,
                 run, what="two finished trials")
        _fill(small_disk)
        run.wait(timeout=120)
    finally:
        run.kill()
        run.wait()
    stderr = (tmp_path / "err").read_text()
    # The error line, wherever it is: a library may print more at the interpreter's exit.
    message = next((line for line in stderr.splitlines() if line.startswith("error: ")), stderr)
    assert run.returncode != 0 and "free some space" in message, stderr
    study = load(small_disk / "run", "full")
    before = {t.number: (t.value, t.datetime_complete) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert 2 <= len(before) < 8

    (small_disk / "filler").unlink()
    table = search.run_search(study_name="full", out_dir=small_disk / "run", workers=1, progress=False)
    study = load(small_disk / "run", "full")
    after = {t.number: (t.value, t.datetime_complete) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert {n: after[n] for n in before} == before  # every finished trial kept, none rerun
    assert sorted(points(study)) == grid_keys({"lr": [0.1, 0.03, 0.01, 0.003], "hidden_sizes": [[32], [16]],
                                               "l2_lambda": [1e-4]})  # every point exactly once
    assert len(table) == 8 and (table.state == "complete").all()
    assert len(pd.read_csv(small_disk / "run" / search.RESULTS_CSV)) == 8


def _children(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads child processes from /proc (Linux)")
def test_a_storage_error_optuna_hides_behind_an_assertion_is_still_named(tmp_path, monkeypatch):
    """When recording a trial's end fails (a full disk), Optuna's optimize loop ends in
    "AssertionError: Should not reach." raised while handling the storage error: the search
    must still say what happened and how to go on, as it does for a plain storage error."""
    import sqlite3

    import optuna

    def work(*args, **kwargs):
        try:
            try:
                raise sqlite3.OperationalError("database or disk is full")
            except sqlite3.OperationalError as e:
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from e
        except optuna.exceptions.StorageInternalError:
            raise AssertionError("Should not reach.")

    monkeypatch.setattr(search, "work", work)
    with pytest.raises(SearchError, match="database or disk is full -- the disk is full.*free some space"):
        search.run_search({"lr": [0.1]}, "grid", out_dir=tmp_path / "run", workers=1, train_size=100, num_epochs=1,
                          progress=False)
    monkeypatch.setattr(search, "work", lambda *a, **k: (_ for _ in ()).throw(AssertionError("a real bug")))
    with pytest.raises(AssertionError, match="a real bug"):  # anything else is not dressed up as a storage error
        search.run_search({"lr": [0.1]}, "grid", out_dir=tmp_path / "run2", workers=1, train_size=100,
                          num_epochs=1, progress=False)


def test_workers_end_with_their_parent(tmp_path):
    config = grid_config(tmp_path / "orphans.toml", "orphans", epochs=6, train_size=3000)
    cmd, env = cli("--config", config, "--workers", 2, out=tmp_path / "run")
    with (tmp_path / "err").open("w") as err:
        parent = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: len(load(tmp_path / "run", "orphans").get_trials(states=(TrialState.RUNNING,))) >= 1,
                 parent, what="a running trial")
        workers = _children(parent.pid)
        assert len(workers) >= 2
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 60  # they end within a second or two; a loaded machine may need more
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers)), (tmp_path / "err").read_text()
    finished = load(tmp_path / "run", "orphans").get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) < 8  # they ended with the parent, not at the end of the grid
    # Each worker was told (SIGTERM), not killed: its trial ended as failed, so a rerun redoes it at once.
    study = load(tmp_path / "run", "orphans")
    assert not study.get_trials(states=(TrialState.RUNNING,))


@pytest.mark.parametrize("where", ["ask", "report", "sleep"])
def test_a_stop_signal_never_leaves_a_trial_running(tmp_path, monkeypatch, where):
    """The signal a worker gets when its parent ends (or on Ctrl-C) may arrive while Optuna writes:
    after `ask` marked the trial running, or while an epoch is reported. The worker must still
    end with the trial failed (a rerun redoes it at once), never leave it running. Raising at
    once, as the worker did before, left it running when the signal came inside `ask`."""
    import optuna

    from utils.search import workers as search_workers
    monkeypatch.setattr(search_workers, "_stop", {"signal": None, "now": False})
    monkeypatch.setattr(search, "work", lambda *a, **k: None)  # create the study and its queue only
    search.run_search(ONE_POINT, "grid", study_name="stop", out_dir=tmp_path, **{**TINY, "num_epochs": 3})
    url = search_storage.storage_url(None, tmp_path)
    previous = signal.signal(signal.SIGTERM, search_workers._on_stop_signal)

    def signal_inside(owner, name):
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            signal.raise_signal(signal.SIGTERM)
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapped)
    try:
        if where == "ask":  # the sampler runs inside study.ask(), after the trial became running
            signal_inside(optuna.samplers.RandomSampler, "before_trial")
        elif where == "report":
            signal_inside(optuna.trial.Trial, "report")
        else:  # waiting for another worker's running trial: no trial of its own to fail
            monkeypatch.setattr(search_workers, "refill", lambda study, settings, opener=False: (0, 1))
            signal_inside(search_workers.time, "sleep")
        with pytest.raises(KeyboardInterrupt):
            search_workers.work(url, "stop")
    finally:
        signal.signal(signal.SIGTERM, previous)
    states = [t.state for t in optuna.load_study(study_name="stop", storage=url).get_trials()]
    assert TrialState.RUNNING not in states
    assert states == ([TrialState.WAITING] if where == "sleep" else [TrialState.FAIL])


@pytest.mark.parametrize("when", ["report", "end"])
def test_a_trial_failed_by_another_process_does_not_stop_the_worker(tmp_path, monkeypatch, when):
    """A worker starved of CPU misses heartbeats; another process then fails its trial as lost,
    while it trains (its next report fails) or after its last write (Optuna's tell fails, and
    Optuna hides that behind "Should not reach."). The worker must go on (the point is queued
    again and run), not crash the search."""
    import optuna

    from utils.search import workers as search_workers
    taken = []

    def take_away_once(original):
        def wrapped(trial, *args):
            result = original(trial, *args) if when == "end" else None
            if not taken:  # what fail_stale_trials in another process does
                taken.append(trial.number)
                optuna.load_study(study_name="starved", storage=trial.study._storage).tell(
                    trial.number, state=TrialState.FAIL)
            return result if when == "end" else original(trial, *args)
        return wrapped

    if when == "report":
        monkeypatch.setattr(optuna.trial.Trial, "report", take_away_once(optuna.trial.Trial.report))
    else:  # _record is the trial's last write before the objective returns
        monkeypatch.setattr(search_workers, "_record", take_away_once(search_workers._record))
    table = search.run_search(ONE_POINT, "grid", study_name="starved", out_dir=tmp_path,
                              **{**TINY, "num_epochs": 2})
    assert taken and list(table.state) == ["complete"]  # the point ran again, to the end
    states = [t.state for t in load(tmp_path, "starved").get_trials()]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]


def _claim_all(url, start_at, results):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="race", storage=search_storage.open_storage(url))
    while time.time() < start_at:  # all processes start claiming at the same instant
        time.sleep(0.001)
    claimed = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:  # what study.ask() does first
        claimed.append(trial_id)
    results.put(claimed)


def test_sqlite_hands_each_waiting_trial_to_one_process_only(tmp_path):
    """Without BEGIN IMMEDIATE, 3 processes claimed 80 waiting trials 92 and 96 times (measured twice)."""
    import multiprocessing

    import optuna
    url = search_storage.storage_url(tmp_path / "race.db", tmp_path)
    study = optuna.create_study(study_name="race", storage=search_storage.open_storage(url))
    for i in range(80):
        study.enqueue_trial({"x": i}, skip_if_exists=False)
    ctx = multiprocessing.get_context("fork")  # the children only talk to SQLite: no BLAS threads to deadlock
    results = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, time.time() + 3, results)) for _ in range(3)]
    for p in procs:
        p.start()
    claimed = [trial_id for _ in procs for trial_id in results.get(timeout=120)]
    for p in procs:
        p.join()
    assert sorted(claimed) == sorted(t._trial_id for t in study.get_trials())


def _disk_full(*args, **kwargs):
    """What Optuna raises when SQLite cannot write: StorageInternalError from an OperationalError."""
    import sqlite3

    import optuna

    try:
        raise sqlite3.OperationalError("database or disk is full")
    except sqlite3.OperationalError as e:
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from e


@pytest.mark.parametrize("step", ["_study_exists", "open_study", "_Progress", "results_table"])
def test_a_full_disk_at_any_step_of_the_search_is_one_line(step, tmp_path, monkeypatch):
    """Opening the study, refilling the grid (inside open_study), the progress table and the results
    all touch the storage: a storage error in any of them is named, without Optuna's traceback."""
    monkeypatch.setattr(search, step, _disk_full)
    if step == "results_table":
        monkeypatch.setattr(search, "work", lambda *a, **k: None)
        monkeypatch.setattr(search, "_Progress", lambda *a: type("P", (), {"close": lambda self: None, "update": lambda self: None})())
    with pytest.raises(SearchError) as e:
        search.run_search(ONE_POINT, "grid", out_dir=tmp_path / "run", **TINY)
    assert "cannot write the search storage" in str(e.value) and "database or disk is full" in str(e.value)
    assert "free some space" in str(e.value)


@pytest.mark.parametrize("args, words", [
    (["--study", ""], "study_name must be letters, digits, '-', '_' or '.', got ''"),
    (["--out", ""], "--out '': an empty folder name"),
    (["--blas-threads", "0"], "blas_threads must be an integer >= 1, got 0"),
    (["--workers", "-2"], "workers must be an integer >= 1, got -2"),
], ids=["study-empty", "out-empty", "blas-threads-0", "workers-negative"])
def test_bad_search_options_are_one_line(args, words, capsys):
    with pytest.raises(SystemExit) as e:
        search.main(["--quiet", "--epochs", "1", "--train-size", "100", *args])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and words in err and "Traceback" not in err, err
