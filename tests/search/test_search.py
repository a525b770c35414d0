"""The hyperparameter search: results, resume after a kill, parallel and distributed workers, the pruner, the plots.

Every search here is tiny (1,000-3,000 real training images, 2-4 epochs, small layers)
and writes only into pytest's temporary folders. Bad input, a full disk and a killed
parent are in test_search_faults.py.
"""
import json
import math
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

from tests.search import pg
from utils.core.models import mlp
from utils.core.train import hyperparameters
from utils.plumbing import config
from utils.search import engine as search_engine
from utils.search import run as search
from utils.search import storage as search_storage

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[2]
TINY = dict(train_size=1000, num_epochs=2, progress=False)


@pytest.fixture(scope="module", autouse=True)
def prepared_data(tmp_path_factory, fashion_raw):
    """Notebook 01's prepared split in a temporary data folder, for this process and the CLI's (saves 6 s each)."""
    from utils.core import prepared
    folder = tmp_path_factory.mktemp("data")
    path = folder / "fashion_mnist_prepared.npz"
    prepared.save_prepared(prepared.prepare_fashion_mnist(val_size=6000, seed=0), path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NN_DATA_DIR", str(folder))
        yield path


@pytest.fixture
def quick_heartbeat(monkeypatch):
    """A killed worker's trial is stale after 2 s instead of 10 (in this process)."""
    monkeypatch.setattr(search_storage, "HEARTBEAT", {"heartbeat_interval": 1, "grace_period": 2})


def points(study):
    """Grid point of each trial that finished (complete or pruned), as a list with repeats."""
    return [t.user_attrs["point"] for t in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))]


def grid_keys(space, **given):
    settings = search.check_settings({"space": space, **given}, search._defaults())
    return sorted(search_engine.point_key(p) for p in search_engine.grid_points(settings))


def load(out_dir, study_name):
    return optuna.load_study(study_name=study_name,
                             storage=search_storage.open_storage(search_storage.storage_url(None, out_dir)))


def cli(*args, out, log_dir=None):
    """The command line and environment of a search subprocess (nothing lands in the repo's log/)."""
    env = {**os.environ, "NN_LOG_DIR": str(log_dir or out), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out_args = ["--out", str(out)] if out is not None else []
    return [sys.executable, "-m", "utils", "search", *map(str, args), *out_args, "--quiet"], env


def wait_for(condition, process, seconds=120, what="the condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if condition():
                return
        except (ValueError, KeyError, optuna.exceptions.StorageInternalError):
            pass  # the study is not there yet
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen (process exit code {process.poll()})")


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory):
    """A 2 x 2 x 1 grid, in which lr=10 with L2 1.0 diverges."""
    out = tmp_path_factory.mktemp("grid")
    space = {"lr": [0.05, 10.0], "hidden_sizes": [[32], [16]], "l2_lambda": [1.0]}
    table = search.run_search(space, study_name="small", out_dir=out, workers=1, fixed={"lr_schedule": "constant"},
                              **TINY)
    return space, out, table


def test_grid_results_are_complete_sorted_and_written(small_grid):
    space, out, table = small_grid
    assert len(table) == 4 and set(table.trial) == {0, 1, 2, 3}
    assert sorted(zip(table.lr, table.hidden_sizes)) == sorted((lr, h) for lr in (0.05, 10.0) for h in ("32", "16"))
    ok, diverged = table[table.lr == 0.05], table[table.lr == 10.0]
    assert (ok.state == "complete").all() and (ok.epochs == 2).all() and (ok.val_acc > 0.3).all()
    assert (diverged.state == "pruned").all() and diverged.note.str.contains("nan|inf").all()
    assert list(table.state) == ["complete", "complete", "pruned", "pruned"]  # complete first, best first
    assert table.val_acc.iloc[0] >= table.val_acc.iloc[1]
    assert [len(json.loads(c)) for c in ok.val_acc_curve] == [2, 2]

    csv = pd.read_csv(out / search.RESULTS_CSV)
    assert list(csv.columns) == list(table.columns) and len(csv) == 4
    np.testing.assert_allclose(csv.val_acc, table.val_acc)
    best = json.loads((out / search.BEST_JSON).read_text())
    top = table.iloc[0]
    assert best["hidden_sizes"] == [int(top.hidden_sizes)] and best["lr"] == top.lr == 0.05
    # Every other hyperparameter is the base experiment's (configs/mlp_fashion.toml), except the fixed one.
    assert best["dropout"] == 0.2 and best["momentum"] == 0.9 and best["lr_schedule"] == "constant"
    assert best["l2_lambda"] == 1.0 and best["activation"] == "relu" and best["val_acc"] == top.val_acc

    model = mlp([784, *best["hidden_sizes"], 10], best["activation"], best["dropout"], rng=0)
    assert model.layers[0].params["W"].shape == (784, best["hidden_sizes"][0])
    assert hyperparameters(**{k: v for k, v in best.items() if k in search_engine.TRAIN_KEYS})["lr"] == 0.05


def test_rerunning_a_finished_search_trains_nothing_and_checks_settings(small_grid):
    space, out, table = small_grid
    again = search.run_search(space, study_name="small", out_dir=out, workers=1, fixed={"lr_schedule": "constant"},
                              **TINY)
    pd.testing.assert_frame_equal(again, table)
    with pytest.raises(ValueError, match="created with num_epochs=2"):
        search.run_search(space, study_name="small", out_dir=out, workers=1, train_size=1000, num_epochs=3)


def test_default_settings_are_the_config_grid_of_notebook_02():
    s = search._defaults()
    assert s["space"] == {"lr": [0.1, 0.03, 0.01, 0.003], "hidden_sizes": [[512, 256], [256, 128], [512]],
                          "l2_lambda": [1e-2, 1e-3, 1e-4, 0.0]}
    assert (s["mode"], s["train_size"], s["num_epochs"], s["prune"], s["seed"]) == ("grid", 54000, 4, True, 0)
    assert {k: s["fixed"][k] for k in ("dropout", "momentum", "lr_schedule", "batch_size", "optimizer")} == \
        {"dropout": 0.2, "momentum": 0.9, "lr_schedule": "cosine", "batch_size": 128, "optimizer": "sgd"}
    assert len(search_engine.grid_points(s)) == 48


def test_killed_worker_resumes_with_the_remaining_points_only(tmp_path, quick_heartbeat):
    cmd, env = cli("--train-size", 2000, "--epochs", 3, "--workers", 1, "--study", "killed",
                   "--config", tmp_path / "grid.toml", out=tmp_path / "run")
    (tmp_path / "grid.toml").write_text('name = "killed"\nexperiment = "mlp_fashion"\n[search]\nnum_epochs = 3\n'
                                        'prune = false\n[search.space]\nlr = [0.1, 0.03, 0.01, 0.003]\n'
                                        'hidden_sizes = [[64], [32]]\nl2_lambda = [1e-4]\n')
    errors = tmp_path / "worker.err"  # a file, not a pipe: a full pipe would stall the worker
    with errors.open("w") as err:
        worker = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: len(load(tmp_path / "run", "killed").get_trials(states=(TrialState.COMPLETE,))) >= 2,
                 worker, what="two finished trials")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    study = load(tmp_path / "run", "killed")
    before = {t.number: (t.value, t.datetime_complete) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    orphans = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
    assert 2 <= len(before) < 8 and len(orphans) <= 1, errors.read_text()
    written = pd.read_csv(tmp_path / "run" / search.RESULTS_CSV)  # written as trials finished, not at the end:
    assert (written.state == "complete").sum() >= len(before) - 1  # the kill may beat the last one's CSV

    table = search.run_search(study_name="killed", out_dir=tmp_path / "run", workers=1, progress=False)
    study = load(tmp_path / "run", "killed")
    after = {t.number: (t.value, t.datetime_complete) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert {n: after[n] for n in before} == before  # finished trials kept, not rerun
    assert len(after) == 8  # with the grid check below: exactly the remaining points ran, once each
    assert [t.state for t in study.trials if t.number in orphans] == [TrialState.FAIL] * len(orphans)
    assert sorted(points(study)) == grid_keys({"lr": [0.1, 0.03, 0.01, 0.003], "hidden_sizes": [[64], [32]],
                                               "l2_lambda": [1e-4]})
    assert len(table) == 8 and (table.state == "complete").all()
    assert not table.duplicated(["lr", "hidden_sizes"]).any()


def test_two_local_workers_run_each_point_once_with_the_same_pruning_decisions(tmp_path):
    """The same grid, pruned, with one worker and with two: each point once, the same table, trial for trial."""
    space = {"lr": [0.3, 0.1, 0.03, 0.01, 0.003, 0.001], "hidden_sizes": [[32], [16]], "l2_lambda": [1e-4]}
    tables = [search.run_search(space, study_name=f"w{n}", out_dir=tmp_path / f"w{n}", workers=n, prune=True,
                                train_size=1500, num_epochs=3, progress=False)
              for n in (1, 2)]
    study = load(tmp_path / "w2", "w2")
    assert sorted(points(study)) == grid_keys(space)
    assert not study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))
    assert len({t.user_attrs.get("worker") for t in study.trials} - {None}) == 2  # both took a trial (run or skipped)
    assert (tables[0].state == "pruned").sum() >= 2  # the yardstick really pruned something
    assert (tables[0][tables[0].state == "pruned"].epochs < 3).all()  # never after the last epoch: it saves nothing
    # Trial numbers may differ (a worker that found no waiting point leaves a skipped trial), the rest may not.
    by_point = [t.drop(columns=["trial", "seconds"]).sort_values(["lr", "hidden_sizes"]).reset_index(drop=True)
                for t in tables]
    pd.testing.assert_frame_equal(*by_point)
    reference = {search_engine.point_key(p) for p in search_engine.grid_points(
        search.check_settings({"space": space, "prune": True}, search._defaults()))[:search_engine.N_REFERENCE]}
    assert {t.user_attrs["point"] for t in study.trials if t.user_attrs.get("reference")} == reference
    assert all(t.state == TrialState.COMPLETE for t in study.trials if t.user_attrs.get("reference"))


def test_reference_pruner_compares_with_the_reference_trials_only():
    """The reference trials are the yardstick; a finished later trial must not move it, as it would
    move Optuna's MedianPruner, whose answer then depends on which trials finished first."""
    study = optuna.create_study(direction="maximize")
    for acc in [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85]:  # median at epoch 3: 0.675
        study.add_trial(optuna.trial.create_trial(value=acc, intermediate_values={1: acc - 0.1, 3: acc},
                                                  user_attrs={"reference": True}))
    for _ in range(3):  # much better trials finishing early would lift a "so far" median above 0.70
        study.add_trial(optuna.trial.create_trial(value=0.95, intermediate_values={3: 0.95}))

    def decision(curve, reference=False, last_step=None):
        trial = optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values=curve,
                                          user_attrs={"reference": True} if reference else {})
        return search_engine.ReferencePruner(n_warmup_steps=3, last_step=last_step).prune(study, trial)

    assert not decision({1: 0.3, 2: 0.5, 3: 0.70})  # above the reference median
    assert decision({1: 0.3, 2: 0.5, 3: 0.66})       # below it
    assert not decision({1: 0.3, 2: 0.5, 3: 0.66}, last_step=3)  # but epoch 3 is the last: nothing left to save
    assert not decision({1: 0.3, 2: 0.1})            # epoch 2: still warming up
    assert not decision({1: 0.1, 2: 0.2, 3: 0.3}, reference=True)  # a reference trial is never pruned
    assert optuna.pruners.MedianPruner(n_warmup_steps=3).prune(study, optuna.trial.create_trial(
        state=TrialState.RUNNING, intermediate_values={3: 0.70}))  # the "so far" median does prune it


def test_points_enqueued_twice_still_run_once(tmp_path):
    """Two processes that enqueue the same missing points at once: the later copies are skipped."""
    space = {"lr": [0.05, 0.01], "hidden_sizes": [[16]], "l2_lambda": [0.0, 1e-3]}
    settings = search.check_settings({"space": space, "prune": False, **{k: TINY[k] for k in ("train_size", "num_epochs")}},
                                     search._defaults())
    study, settings, _ = search_engine.open_study(search_storage.storage_url(None, tmp_path), "race", settings, [])
    for params in search_engine.grid_points(settings):  # what a second machine would add in the same instant
        study.enqueue_trial(params, user_attrs={"point": search_engine.point_key(params)})
    table = search.run_search(study_name="race", out_dir=tmp_path, workers=1, progress=False)
    assert sorted(points(study)) == grid_keys(space)
    skipped = [t for t in study.trials if "skipped" in t.user_attrs]
    assert len(skipped) == 4 and all("duplicate of trial" in t.user_attrs["skipped"] for t in skipped)
    assert len(table) == 4 and not table.duplicated(["lr", "l2_lambda"]).any()


def test_tpe_search_keeps_its_trial_budget(tmp_path):
    space = {"lr": {"low": 0.005, "high": 0.2, "log": True}, "hidden_sizes": [[16], [32]]}
    table = search.run_search(space, "tpe", 5, study_name="tpe", out_dir=tmp_path, workers=1, **TINY)
    assert len(table) == 5 and set(table.state) <= {"complete", "pruned"}
    assert table.lr.between(0.005, 0.2).all() and set(table.hidden_sizes) <= {"16", "32"}
    again = search.run_search(study_name="tpe", out_dir=tmp_path, workers=1, progress=False)
    assert len(again) == 5


@pytest.fixture
def postgres_url():
    if pg.bindir() is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install -y postgresql)")
    with pg.postgresql_server() as url:
        yield url


@pytest.mark.postgres
def test_two_machines_share_a_grid_through_postgresql(postgres_url, tmp_path):
    """Two workers started with the same command against one database: each point once, none lost."""
    (tmp_path / "shared.toml").write_text('name = "shared"\nexperiment = "mlp_fashion"\n[search]\nnum_epochs = 2\n'
                                          'train_size = 1000\n[search.space]\nlr = [0.1, 0.03, 0.01]\n'
                                          'hidden_sizes = [[32], [16]]\nl2_lambda = [1e-4]\n')
    runs = []
    for name in ("a", "b"):
        cmd, env = cli("--config", tmp_path / "shared.toml", "--storage", postgres_url, "--workers", 1,
                       out=tmp_path / name)
        runs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [run.communicate(timeout=180) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=search_storage.open_storage(postgres_url))
    assert sorted(points(study)) == grid_keys({"lr": [0.1, 0.03, 0.01], "hidden_sizes": [[32], [16]],
                                               "l2_lambda": [1e-4]})
    lost = [t for t in study.trials if t.state not in (TrialState.COMPLETE, TrialState.PRUNED)
            and "skipped" not in t.user_attrs]
    assert lost == []
    tables = [pd.read_csv(tmp_path / name / search.RESULTS_CSV) for name in ("a", "b")]
    assert [len(t) for t in tables] == [6, 6]  # each machine waits for the other's trials, then writes all


def test_search_plots_keep_pruned_trials_off_the_colour_scale(small_grid):
    from utils.search.results import plot_search_curves, plot_search_heatmaps
    _, _, table = small_grid
    fig = plot_search_heatmaps(table)
    (panel,) = [ax for ax in fig.axes if ax.get_title().startswith("l2_lambda")]
    shown = panel.images[0].get_array()
    assert shown.count() == 2  # the two complete cells are coloured, the diverged ones (lr=10) masked ...
    assert not [p for p in panel.patches if p.get_hatch()]  # ... not hatched as if pruned ...
    texts = [t.get_text() for t in panel.texts]
    assert texts.count("diverged") == 2 and len(texts) == 4  # ... but said in words, and in the title
    assert "diverged" in fig._suptitle.get_text()
    fig = plot_search_curves(table, top=1)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 4 and len(ax.get_legend().get_texts()) == 1  # one coloured, three grey
    assert all(float(t).is_integer() for t in ax.get_xticks())  # whole epochs


def test_pruning_savings_from_the_per_trial_seconds():
    table = pd.DataFrame({"state": ["complete", "pruned", "pruned", "failed"], "epochs": [4, 2, 1, 0],
                          "seconds": [8.0, 4.0, 2.0, 1.0]})
    s = search.pruning_savings(table, num_epochs=4)
    assert s["seconds"] == 14.0 and s["seconds_without_pruning"] == 8.0 + 8.0 + 8.0
    assert s["saved"] == 10.0 and s["saved_fraction"] == pytest.approx(10 / 24) and s["pruned"] == 2


def test_run_search_config_takes_everything_from_the_config(tmp_path):
    from utils.plumbing.config import load_config
    (tmp_path / "mini.toml").write_text('name = "mini"\nexperiment = "mlp_fashion"\n[search]\nnum_epochs = 1\n'
                                        'train_size = 500\nworkers = 1\n[search.space]\nlr = [0.05]\n'
                                        'hidden_sizes = [[8]]\nl2_lambda = [0.0]\n')
    cfg = load_config(tmp_path / "mini.toml", overrides={"model.dropout": 0.1})
    table = search.run_search_config(cfg, out_dir=tmp_path / "out", progress=False)
    study = load(tmp_path / "out", "mini")  # named after the config
    settings = study.user_attrs["search"]
    assert (settings["train_size"], settings["num_epochs"], settings["fixed"]["dropout"]) == (500, 1, 0.1)
    assert settings["fixed"]["lr_schedule"] == cfg["train"]["lr_schedule"] and "lr" not in settings["fixed"]
    assert len(table) == 1 and table.state[0] == "complete"


def test_a_48_point_search_reads_each_config_file_once(tmp_path, monkeypatch):
    """The loader reads a file; nothing else does: not train(), not each grid point, not the defaults."""
    reads = []
    read_toml = config._read_toml
    monkeypatch.setattr(config, "_read_toml", lambda path: reads.append(path.name) or read_toml(path))
    cfg = config.load_config("search_fashion")
    monkeypatch.setattr(search, "work", lambda *a, **k: None)  # the study and its queue of every point only
    search.run_search_config(cfg, out_dir=tmp_path, workers=1, progress=False)
    assert math.prod(map(len, cfg["search"]["space"].values())) == 48 and load(tmp_path, cfg["name"]).get_trials()
    assert sorted(reads) == ["mlp_fashion.toml", "search_fashion.toml"]


def test_equal_scores_rank_the_simpler_model_first_whatever_finished_first():
    from utils.search.results import ranked
    rows = [(0, "512-256", 0.03, 1e-4, 0.88367, "complete"), (1, "512-256", 0.03, 1e-3, 0.88367, "complete"),
            (2, "128-64", 0.1, 0.0, 0.88367, "complete"), (3, "128-64", 0.03, 0.0, 0.88367, "complete"),
            (4, "256-128", 0.1, 0.0, 0.9, "pruned"), (5, "512-256", 0.1, 0.0, 0.87, "complete")]
    table = pd.DataFrame(rows, columns=["trial", "hidden_sizes", "lr", "l2_lambda", "val_acc", "state"])
    for shuffled in (table, table.iloc[::-1]):  # the order trials finished in does not matter
        assert list(ranked(shuffled).trial) == [3, 2, 1, 0, 5, 4]
