"""The hyperparameter search: results, bad input, resume after a kill, parallel and distributed workers.

Every search here is tiny (2,000-4,000 real training images, 2-3 epochs, small layers)
and writes only into pytest's temporary folders.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from module import mlp
from tests import pg
from utils import search
from utils.train import hyperparameters

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parent.parent
TINY = dict(train_size=2000, num_epochs=2, progress=False)


def _points(study):
    """Grid point of each trial that finished (complete or pruned), as a list with repeats."""
    return [t.user_attrs["point"] for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))]


def _grid_keys(space):
    return sorted(search.point_key(p) for p in search.grid_points(search.check_settings(space=space)))


def _cli(*args, log_dir):
    env = {**os.environ, "NN_LOG_DIR": str(log_dir)}  # belt and braces: nothing lands in the repo's log/
    return [sys.executable, "-m", "utils.search", *map(str, args), "--log-dir", str(log_dir), "--quiet"], env


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory):
    """A 2 x 2 x 1 grid, in which lr=50 diverges."""
    log_dir = tmp_path_factory.mktemp("grid")
    space = {"lr": [0.05, 50.0], "hidden_sizes": [[32], [16]], "l2_lambda": [1e-4]}
    table = search.run_search(space, study_name="small", log_dir=log_dir, n_workers=1, **TINY)
    return space, log_dir, table


def test_grid_results_are_complete_sorted_and_written(small_grid):
    space, log_dir, table = small_grid
    assert len(table) == 4 and set(table.trial) == {0, 1, 2, 3}
    assert sorted(zip(table.lr, table.hidden_sizes)) == sorted((lr, h) for lr in (0.05, 50.0) for h in ("32", "16"))
    acc = table.val_acc.to_numpy()
    assert (np.diff(acc[~np.isnan(acc)]) <= 0).all() and np.isnan(acc[2:]).all()  # NaN (diverged) last
    ok, diverged = table[table.lr == 0.05], table[table.lr == 50.0]
    assert (ok.state == "complete").all() and (ok.epochs == 2).all() and (ok.val_acc > 0.5).all()
    assert (diverged.state == "pruned").all() and diverged.note.str.contains("nan|inf").all()
    assert [len(json.loads(c)) for c in ok.val_acc_curve] == [2, 2]

    csv = pd.read_csv(log_dir / search.RESULTS_CSV)
    assert list(csv.columns) == list(table.columns) and len(csv) == 4
    np.testing.assert_allclose(csv.val_acc, table.val_acc)
    best = json.loads((log_dir / search.BEST_JSON).read_text())
    top = table.iloc[0]
    assert best["hidden_sizes"] == [int(top.hidden_sizes)] and best["lr"] == top.lr == 0.05
    assert best["l2_lambda"] == 1e-4 and best["activation"] == "relu" and best["val_acc"] == top.val_acc

    model_kw, train_kw = search.load_best(log_dir / search.BEST_JSON)
    model = mlp([784, *model_kw["hidden_sizes"], 10], model_kw["activation"], model_kw["dropout"], rng=0)
    assert model.layers[0].params["W"].shape == (784, best["hidden_sizes"][0])
    assert hyperparameters(**train_kw)["lr"] == 0.05


def test_rerunning_a_finished_search_trains_nothing_and_checks_settings(small_grid):
    space, log_dir, table = small_grid
    again = search.run_search(space, study_name="small", log_dir=log_dir, n_workers=1, **TINY)
    pd.testing.assert_frame_equal(again, table)
    with pytest.raises(ValueError, match="created with num_epochs=2"):
        search.run_search(space, study_name="small", log_dir=log_dir, n_workers=1, train_size=2000, num_epochs=3)


@pytest.mark.parametrize("kwargs, message", [
    ({"space": {}}, "non-empty dict"),
    ({"space": {"lr": []}}, "expected a non-empty list"),
    ({"space": {"lr": 0.1}}, "expected a non-empty list"),
    ({"space": {"l2_lamda": [0.0]}}, "unknown hyperparameter 'l2_lamda'.*did you mean 'l2_lambda'"),
    ({"space": {"hidden_sizes": [[256, 0]]}}, "positive integers"),
    ({"space": {"lr": [0.1, -0.1]}}, "lr must be a positive number"),
    ({"space": {"activation": ["relu", "swish"]}}, "activation must be one of"),
    ({"space": {"lr": {"low": 0.01, "high": 0.1}}}, "ranges need mode='tpe'"),
    ({"mode": "tpe"}, "needs n_trials"),
    ({"mode": "random"}, "mode must be 'grid' or 'tpe'"),
    ({"fixed": {"lr": 0.1}}, "both searched and fixed"),
    ({"storage": "postgresql://nobody@127.0.0.1:1/none"}, "cannot open the search storage"),
    ({"storage": "nosuchdb://host/db"}, "cannot open the search storage"),
    ({"study_name": "a/b"}, "study_name must be"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        search.run_search(**{"log_dir": tmp_path, "n_workers": 1, **TINY, **kwargs})
    assert list(tmp_path.iterdir()) == []  # no journal, no results


def test_killed_worker_resumes_with_the_remaining_points_only(tmp_path):
    space = ["--lr", 0.1, 0.03, 0.01, 0.003, "--hidden-sizes", 64, 32, "--l2-lambda", 1e-4]
    cmd, env = _cli("--study", "killed", "--workers", 1, "--epochs", 3, "--train-size", 3000, *space, log_dir=tmp_path)
    errors = tmp_path / "worker.err"  # a file, not a pipe: a full pipe would stall the worker
    with errors.open("w") as err:
        worker = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    journal = tmp_path / "search_killed.journal"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and worker.poll() is None:
            if journal.exists():
                study = optuna.load_study(study_name="killed", storage=search.open_storage(str(journal)))
                if len(study.get_trials(states=(TrialState.COMPLETE,))) >= 2:
                    break
            time.sleep(0.02)
        assert worker.poll() is None, f"the worker ended before it could be killed: {errors.read_text()}"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    study = optuna.load_study(study_name="killed", storage=search.open_storage(str(journal)))
    before = {t.number: (t.value, t.datetime_complete) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    orphans = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
    assert 2 <= len(before) < 8 and len(orphans) <= 1

    table = search.run_search(study_name="killed", log_dir=tmp_path, n_workers=1, progress=False)  # settings: the study's
    study = optuna.load_study(study_name="killed", storage=search.open_storage(str(journal)))
    after = {t.number: (t.value, t.datetime_complete) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert {n: after[n] for n in before} == before  # finished trials kept, not rerun
    assert len(after) == 8  # with the grid check below: exactly the remaining points ran, once each
    assert [t.state for t in study.trials if t.number in orphans] == [TrialState.FAIL] * len(orphans)
    assert sorted(_points(study)) == _grid_keys({"lr": [0.1, 0.03, 0.01, 0.003], "hidden_sizes": [[64], [32]],
                                                 "l2_lambda": [1e-4]})
    assert len(table) == 8 and (table.state == "complete").all()
    assert not table.duplicated(["lr", "hidden_sizes"]).any()


def test_two_local_workers_run_each_point_once(tmp_path):
    space = {"lr": [0.1, 0.03, 0.01, 0.003], "hidden_sizes": [[128], [64]], "l2_lambda": [1e-4]}
    table = search.run_search(space, study_name="pair", log_dir=tmp_path, n_workers=2, train_size=4000,
                              num_epochs=3, progress=False)
    study = optuna.load_study(study_name="pair", storage=search.open_storage(str(tmp_path / "search_pair.journal")))
    assert sorted(_points(study)) == _grid_keys(space)
    assert not study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))
    assert len({t.user_attrs["worker"] for t in study.get_trials(states=(TrialState.COMPLETE,))}) == 2
    assert len(table) == 8 and (table.state == "complete").all()


def test_pruning_decisions_do_not_depend_on_the_number_of_workers(tmp_path):
    """The same grid, pruned, with one worker and with two: the same table, trial for trial."""
    space = {"lr": [0.3, 0.1, 0.03, 0.01, 0.003, 0.001], "hidden_sizes": [[32], [16], [8]], "l2_lambda": [1e-4]}
    tables = [search.run_search(space, study_name=f"w{n}", log_dir=tmp_path, n_workers=n, prune=True,
                                train_size=2000, num_epochs=4, progress=False).set_index(["lr", "hidden_sizes"])
              for n in (1, 2)]
    columns = ["val_acc", "best_epoch", "epochs", "state"]
    assert (tables[0].state == "pruned").sum() >= 2  # the yardstick really pruned something
    pd.testing.assert_frame_equal(tables[0].sort_index()[columns], tables[1].sort_index()[columns])


def test_reference_pruner_compares_with_the_first_trials_only():
    """Trials 0-7 are the yardstick; a finished later trial (8) must not move it, as it would
    move Optuna's MedianPruner, whose answer then depends on which trials finished first."""
    study = optuna.create_study(direction="maximize")
    for acc in [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85]:  # median at epoch 3: 0.675
        study.add_trial(optuna.trial.create_trial(value=acc, intermediate_values={1: acc - 0.1, 3: acc}))
    for _ in range(3):  # much better trials finishing early would lift a "so far" median above 0.70
        study.add_trial(optuna.trial.create_trial(value=0.95, intermediate_values={3: 0.95}))

    def decision(curve, number=11):
        trial = optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values=curve)
        trial.number = number
        return search.ReferencePruner(n_reference=8, n_warmup_steps=3).prune(study, trial)

    assert not decision({1: 0.3, 2: 0.5, 3: 0.70})  # above the reference median
    assert decision({1: 0.3, 2: 0.5, 3: 0.66})       # below it
    assert not decision({1: 0.3, 2: 0.1})            # epoch 2: still warming up
    assert not decision({1: 0.1, 2: 0.2, 3: 0.3}, number=5)  # a reference trial is never pruned
    assert optuna.pruners.MedianPruner(n_warmup_steps=3).prune(study, optuna.trial.create_trial(
        state=TrialState.RUNNING, intermediate_values={3: 0.70}))  # the "so far" median does prune it


def test_points_enqueued_twice_still_run_once(tmp_path):
    """Two processes that enqueue the same missing points at once: the later copies are skipped."""
    space = {"lr": [0.05, 0.01], "hidden_sizes": [[16]], "l2_lambda": [0.0, 1e-3]}
    spec = search.storage_spec(None, "race", tmp_path)
    study, settings = search.open_study(spec, "race", space=space, **{k: TINY[k] for k in ("train_size", "num_epochs")})
    for params in search.grid_points(settings):  # what a second machine would add in the same instant
        study.enqueue_trial(params, user_attrs={"point": search.point_key(params)})
    table = search.run_search(study_name="race", log_dir=tmp_path, n_workers=1, progress=False)
    assert sorted(_points(study)) == _grid_keys(space)
    skipped = [t for t in study.trials if "skipped" in t.user_attrs]
    assert len(skipped) == 4 and all("duplicate of trial" in t.user_attrs["skipped"] for t in skipped)
    assert len(table) == 4 and not table.duplicated(["lr", "l2_lambda"]).any()


def test_tpe_search_keeps_its_trial_budget(tmp_path):
    space = {"lr": {"low": 0.005, "high": 0.2, "log": True}, "hidden_sizes": [[16], [32]]}
    table = search.run_search(space, "tpe", 5, study_name="tpe", log_dir=tmp_path, n_workers=1, **TINY)
    assert len(table) == 5 and set(table.state) <= {"complete", "pruned"}
    assert table.lr.between(0.005, 0.2).all() and set(table.hidden_sizes) <= {"16", "32"}
    again = search.run_search(study_name="tpe", log_dir=tmp_path, n_workers=1, progress=False)
    assert len(again) == 5


@pytest.fixture
def postgres_url():
    if pg.bindir() is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install -y postgresql)")
    with pg.postgresql_server() as url:
        yield url


def test_two_machines_share_a_grid_through_postgresql(postgres_url, tmp_path):
    """Two workers started with the same command against one database: each point once, none lost."""
    args = ["--storage", postgres_url, "--study", "shared", "--workers", 1, "--epochs", 2, "--train-size", 2000,
            "--lr", 0.1, 0.03, 0.01, "--hidden-sizes", 32, 16, "--l2-lambda", 1e-4]
    runs = []
    for name in ("a", "b"):
        cmd, env = _cli(*args, log_dir=tmp_path / name)
        runs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [run.communicate(timeout=180) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=search.open_storage(postgres_url))
    assert sorted(_points(study)) == _grid_keys({"lr": [0.1, 0.03, 0.01], "hidden_sizes": [[32], [16]],
                                                 "l2_lambda": [1e-4]})
    lost = [t for t in study.trials if t.state != TrialState.COMPLETE and "skipped" not in t.user_attrs]
    assert lost == []
    tables = [pd.read_csv(tmp_path / name / search.RESULTS_CSV) for name in ("a", "b")]
    assert max((t.state == "complete").sum() for t in tables) == 6  # the last worker to finish saw all


def test_search_plots_draw_every_panel_and_curve(small_grid):
    from utils.plots import plot_search_curves, plot_search_heatmaps
    _, _, table = small_grid
    fig = plot_search_heatmaps(table)
    heatmaps = [ax for ax in fig.axes if ax.get_title().startswith("l2_lambda")]
    assert len(heatmaps) == 1 and len(fig.axes) == 2  # one panel, one colour bar
    texts = [t.get_text() for t in heatmaps[0].texts]
    assert sorted(texts) == sorted(f"{v:.3f}" for v in table.val_acc.dropna())  # diverged cells blank
    fig = plot_search_curves(table, top=1)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and len(lines[-1].get_xdata()) == 2  # one grey, one coloured
