"""Hyperparameter search on Optuna: a full grid or a budgeted Bayesian (TPE) search.

Every trial builds ``mlp([784, *hidden_sizes, 10], activation)`` and trains it with the
one training loop (utils.train.train); its score is the best validation accuracy. The
search is pruned (ReferencePruner: below the median of the first trials at the same epoch,
the same decisions with any number of workers), parallel (worker processes with one BLAS
thread each) and resumable: every trial lives in a storage that
several processes share, so running the same study again continues it.

- Storage: by default a journal file, LOG_DIR / "search_<study>.journal", safe for
  the processes of one machine; or a database URL shared by several machines:

      python -m utils.search --study fashion                      # this machine, all cores
      python -m utils.search --study fashion --storage postgresql://user:pw@host/db

  Run the second command on every machine: the first one to start creates the study,
  the others read its search space and settings from the storage and join in.
- Grid: Optuna's GridSampler hands out points as trials start, so two workers can get
  the same point (its docs say so) and a point whose worker died is never rerun. So the
  grid points are enqueued as waiting trials instead, and a worker claims one atomically.
  A point whose trial was lost (killed worker, Ctrl-C, error) is enqueued again on the
  next run; if two processes enqueue a point at once, the earlier trial wins and the
  later one is skipped ("skipped" user attribute, state FAIL, left out of the results).
- A diverged trial (NaN loss) is recorded as pruned, with the reason in the results.
- Workers are started with multiprocessing's "spawn" (forking a process whose BLAS
  threads run can deadlock), so a script that calls run_search with n_workers > 1 needs
  the usual `if __name__ == "__main__":` guard; notebooks need nothing.
"""
import argparse
import difflib
import itertools
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
import warnings
from collections import Counter
from datetime import datetime
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from module import ACTIVATIONS, mlp
from utils.checkpoint import atomic_write, save_json
from utils.paths import LOG_DIR
from utils.train import DEFAULTS, TrainingDiverged, hyperparameters, train

DEFAULT_SPACE = {  # the course projects' 4 x 3 x 4 = 48-point grid
    "lr": [0.1, 0.03, 0.01, 0.003],
    "hidden_sizes": [[256, 128], [128, 64], [64, 32]],
    "l2_lambda": [1e-2, 1e-3, 1e-4, 0.0],
}
# The search trains on all 54,000 training images for a few epochs: the ranking of
# configurations is what it must get right, not the last tenth of a percent. (On a 20,000-image
# subset for 10 epochs it ranked lr 0.1 without L2 first, a configuration that came out
# clearly worse when trained in full; see notebook 02.)
DEFAULT_SETTINGS = {"mode": "grid", "space": DEFAULT_SPACE, "fixed": {}, "n_trials": None,
                    "train_size": 54000, "num_epochs": 4, "prune": None, "seed": 0}
MODEL_DEFAULTS = {"hidden_sizes": [256, 128], "activation": "relu", "dropout": 0.0}
# num_epochs and seed are settings of the search itself, not searched values.
SEARCHABLE = sorted(set(MODEL_DEFAULTS) | set(DEFAULTS) - {"num_epochs", "seed"})
RESULTS_CSV, BEST_JSON = "hyperparameter_search_results.csv", "best_hyperparameters.json"
HOLDING = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
MAX_ERRORS = 2        # a point whose trial raised this often is not enqueued again
SETUP_WAIT = 30       # seconds a joining process waits for the creator to set the study up
HEARTBEAT = {"heartbeat_interval": 30, "grace_period": 120}  # database storage only


class _Skip(Exception):
    """This trial is a duplicate of a grid point, or beyond the trial budget."""


# ---------------------------------------------------------------- checking the input

def _check_value(name, value):
    """Return value in canonical form, or raise a ValueError naming the hyperparameter."""
    if name == "hidden_sizes":
        if (not isinstance(value, (list, tuple)) or not value
                or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in value)):
            raise ValueError(f"hidden_sizes values must be non-empty lists of positive integers "
                             f"like [256, 128], got {value!r}")
        return [int(s) for s in value]
    if name == "activation":
        if value not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {value!r}")
        return value
    if name == "dropout":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {value!r}")
        return float(value)
    try:
        hyperparameters(**{name: value})
    except TypeError:
        raise ValueError(f"hyperparameter {name} got a value of the wrong type: {value!r}") from None
    return value.item() if isinstance(value, np.generic) else value


def _check_name(name, where):
    if name not in SEARCHABLE:
        close = difflib.get_close_matches(str(name), SEARCHABLE, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown hyperparameter {name!r} in the {where}{hint} Known: {', '.join(SEARCHABLE)}")


def check_space(space, mode="grid"):
    """Validate a search space; return it in canonical, JSON-able form.

    space: dict name -> list of values, e.g. DEFAULT_SPACE. In "tpe" mode a numeric
    hyperparameter may instead be a range {"low": 1e-3, "high": 0.3, "log": True}.
    Names: the training hyperparameters of utils.train.DEFAULTS (except num_epochs and
    seed) and the model's hidden_sizes, activation and dropout.
    """
    if not isinstance(space, dict) or not space:
        raise ValueError(f"the search space must be a non-empty dict name -> list of values, "
                         f"e.g. {DEFAULT_SPACE}; got {space!r}")
    out = {}
    for name, spec in space.items():
        _check_name(name, "search space")
        if isinstance(spec, (list, tuple)) and spec:
            values = [_check_value(name, v) for v in spec]
            if len({json.dumps(v) for v in values}) < len(values):
                raise ValueError(f"search space {name}: values repeat: {spec!r}")
            out[name] = values
        elif isinstance(spec, dict) and mode == "tpe" and {"low", "high"} <= spec.keys() <= {"low", "high", "log"}:
            low, high = _check_value(name, spec["low"]), _check_value(name, spec["high"])
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high)) or not low < high:
                raise ValueError(f"search space {name}: a range needs numbers low < high, got {spec!r}")
            out[name] = {"low": low, "high": high, "log": bool(spec.get("log", False))}
        else:
            expected = "a non-empty list of values" + (' or a range {"low": .., "high": .., "log": ..}'
                                                        if mode == "tpe" else " (ranges need mode='tpe')")
            raise ValueError(f"search space {name}: expected {expected}, got {spec!r}")
    return out


def check_settings(**settings):
    """Fill in DEFAULT_SETTINGS, validate everything, return the canonical settings dict."""
    s = {**DEFAULT_SETTINGS, **{k: v for k, v in settings.items() if v is not None}}
    unknown = s.keys() - DEFAULT_SETTINGS.keys()
    if unknown:
        raise ValueError(f"unknown search setting(s) {sorted(unknown)}; known: {', '.join(DEFAULT_SETTINGS)}")
    if s["mode"] not in ("grid", "tpe"):
        raise ValueError(f"mode must be 'grid' or 'tpe', got {s['mode']!r}")
    s["space"] = check_space(s["space"], s["mode"])
    if not isinstance(s["fixed"], dict):
        raise ValueError(f"fixed must be a dict of hyperparameters held constant, got {s['fixed']!r}")
    for name in s["fixed"]:
        _check_name(name, "fixed hyperparameters")
        if name in s["space"]:
            raise ValueError(f"{name} is both searched and fixed; remove it from one of them")
    s["fixed"] = {k: _check_value(k, v) for k, v in s["fixed"].items()}
    if s["mode"] == "tpe" and not (_is_int(s["n_trials"]) and s["n_trials"] >= 1):
        raise ValueError(f"mode 'tpe' needs n_trials, an integer >= 1; got {s['n_trials']!r}")
    if s["mode"] == "grid" and s["n_trials"] is not None:
        raise ValueError(f"mode 'grid' runs every point of the grid; n_trials must be None, got {s['n_trials']!r}")
    if not (s["train_size"] is None or _is_int(s["train_size"]) and s["train_size"] >= 10):
        raise ValueError(f"train_size must be None (all) or an integer >= 10, got {s['train_size']!r}")
    for name in ("num_epochs", "seed"):
        if not (_is_int(s[name]) and s[name] >= (1 if name == "num_epochs" else 0)):
            raise ValueError(f"{name} must be an integer >= {1 if name == 'num_epochs' else 0}, got {s[name]!r}")
    s["prune"] = s["mode"] == "tpe" if s["prune"] is None else s["prune"]
    if not isinstance(s["prune"], bool):
        raise ValueError(f"prune must be True, False or None (None: on for tpe, off for grid), got {s['prune']!r}")
    # Tuples -> lists, NumPy numbers -> Python ones: comparable with the copy stored in the study.
    return json.loads(json.dumps(s, default=lambda x: x.item() if isinstance(x, np.generic) else str(x)))


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


# ---------------------------------------------------------------- grid points and parameters

def _encode(name, value):
    """Optuna's categorical choices must be None, bool, int, float or str: [256, 128] -> "256-128"."""
    return "-".join(map(str, value)) if name == "hidden_sizes" else value


def decode(params):
    """Trial parameters -> hyperparameters: "256-128" -> [256, 128]; the rest unchanged."""
    return {k: [int(s) for s in v.split("-")] if k == "hidden_sizes" else v for k, v in params.items()}


def point_key(params):
    return json.dumps(params, sort_keys=True)


def grid_points(settings):
    """Every point of the grid as encoded trial parameters, in a seeded shuffled order.

    Shuffled so that the first trials spread over the grid: the pruner compares every
    later trial with the median of the first ones, which should not all share one lr.
    """
    names = list(settings["space"])
    grid = itertools.product(*([_encode(n, v) for v in settings["space"][n]] for n in names))
    points = [dict(zip(names, values)) for values in grid]
    order = np.random.default_rng(settings["seed"]).permutation(len(points))
    return [points[i] for i in order]


def _suggest(trial, name, spec):
    if isinstance(spec, list):
        return trial.suggest_categorical(name, [_encode(name, v) for v in spec])
    if _is_int(spec["low"]) and _is_int(spec["high"]):
        return trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"])
    return trial.suggest_float(name, spec["low"], spec["high"], log=spec["log"])


# ---------------------------------------------------------------- storage and study

def storage_spec(storage=None, study_name="search", log_dir=None):
    """The storage as a string: a database URL, or the path of a journal file."""
    if storage is None:
        return str(Path(log_dir or LOG_DIR) / f"search_{study_name}.journal")
    storage = str(storage)
    if "://" not in storage and Path(storage).is_dir():
        raise ValueError(f"storage {storage} is a folder; expected a journal file path or a database URL")
    return storage


def _masked(url):
    try:
        import sqlalchemy
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://..."


class _FileLock:
    """The journal's lock: flock, which the kernel releases when its process dies.

    Optuna's default lock, a symlink, outlives a killed worker, and the next run waits 30 s
    before it breaks it.
    """

    def __init__(self, path):
        self.path, self.fd = path + ".flock", None

    def acquire(self):
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return True

    def release(self):
        fd, self.fd = self.fd, None
        os.close(fd)  # closing drops the lock


def _database_url(spec):
    """postgresql:// means psycopg (3) to SQLAlchemy 2.1; use psycopg2 if that is what is installed."""
    scheme, rest = spec.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        import importlib.util
        driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
        return f"postgresql+{driver}://{rest}"
    return spec


def open_storage(spec):
    """Open a journal file (no "://" in spec) or a database URL; ValueError if it cannot be reached."""
    if "://" not in spec:
        Path(spec).parent.mkdir(parents=True, exist_ok=True)
        lock = _FileLock(spec) if fcntl else None  # None: Optuna's own lock (Windows)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(spec, lock_obj=lock))
    connect = {"connect_args": {"connect_timeout": 10}} if spec.startswith("postgres") else {}
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(_database_url(spec), engine_kwargs=connect, **HEARTBEAT)
        except Exception as e:
            # Two processes creating the tables of a new database at once can collide; retry.
            if attempt < 2 and ("already exists" in str(e) or "duplicate key" in str(e)):
                time.sleep(1 + attempt)
                continue
            raise ValueError(f"cannot open the search storage {_masked(spec)}: "
                             f"{type(e).__name__}: {str(e).strip().splitlines()[0]}") from None


def _load_study(storage, study_name, settings, worker=0):
    if settings["mode"] == "grid":  # every trial is enqueued; the sampler only fills a surplus trial
        sampler = optuna.samplers.RandomSampler(seed=settings["seed"])
    else:  # constant_liar: running trials count as observed, so parallel workers spread out
        sampler = optuna.samplers.TPESampler(seed=settings["seed"] + worker, constant_liar=True,
                                             n_startup_trials=min(10, max(1, settings["n_trials"] // 3)))
    pruner = ReferencePruner() if settings["prune"] else optuna.pruners.NopPruner()
    return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)


def open_study(spec, study_name, **given):
    """Create the study or join it; enqueue missing grid points. Returns (study, settings).

    given: the caller's settings (see check_settings); None means "the study's, or the
    default". A given setting that differs from the study's raises ValueError.
    """
    if not isinstance(study_name, str) or not study_name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"study_name must be letters, digits, '-', '_' or '.', got {study_name!r}")
    full = check_settings(**given)  # before touching the storage: bad input starts nothing
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress bar and table report instead
    storage = open_storage(spec)
    try:
        optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    probe = optuna.load_study(study_name=study_name, storage=storage)
    if probe.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(f"study {study_name!r} in {_masked(spec)} is not a maximisation; choose another name")
    stored, deadline = probe.user_attrs.get("search"), time.monotonic() + SETUP_WAIT
    while stored is None and not created and time.monotonic() < deadline:
        time.sleep(0.5)  # another process created the study and is enqueueing its grid
        stored = probe.user_attrs.get("search")
    if stored is None:
        settings = full
    else:
        for name, value in given.items():
            if value is not None and full[name] != stored[name]:
                raise ValueError(f"study {study_name!r} was created with {name}={stored[name]!r}, not {value!r}; "
                                 f"leave {name} out to continue it, or choose another study_name")
        settings = stored
    study = _load_study(storage, study_name, settings)
    _refill(study, settings)
    if stored is None:
        study.set_user_attr("search", settings)  # last: joining processes wait for it
    return study, settings


def _worker_id():
    """host:pid:start time, so that a reused pid is not mistaken for the old process."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid):
    try:  # field 22 of /proc/<pid>/stat, counted after the ")" that ends the command name
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(worker):
    host, pid, start = worker.rsplit(":", 2)
    if host != socket.gethostname():
        return True  # another machine: the database's heartbeat finds its dead workers
    if Path("/proc/self/stat").exists():
        return _start_time(int(pid)) == start
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class ReferencePruner(optuna.pruners.BasePruner):
    """Median pruning whose decisions do not depend on the number of workers or their timing.

    Optuna's MedianPruner compares a trial with the trials completed *so far*. With parallel
    workers that set depends on which trial happened to finish first, so two runs of the same
    grid prune different points and can crown different winners. Here the yardstick is fixed:
    the first n_reference trials (by number; grid points are shuffled, so they spread over the
    grid) always run in full, and a later trial is pruned at epoch e >= n_warmup_steps when its
    best val_acc so far is below the median of their best val_acc up to epoch e. A trial that
    reaches that check before the reference trials have finished waits for them.
    """

    def __init__(self, n_reference=8, n_warmup_steps=2, poll_seconds=0.5):
        self.n_reference, self.n_warmup_steps, self.poll_seconds = n_reference, n_warmup_steps, poll_seconds

    def prune(self, study, trial):
        step = trial.last_step
        if trial.number < self.n_reference or step is None or step < self.n_warmup_steps:
            return False
        yardstick = [max(v for s, v in t.intermediate_values.items() if s <= step)
                     for t in self._reference_trials(study) if min(t.intermediate_values, default=step + 1) <= step]
        return bool(yardstick) and max(trial.intermediate_values.values()) < float(np.median(yardstick))

    def _reference_trials(self, study):
        """The finished reference trials, once none is waiting or running any more."""
        while True:
            reference = [t for t in study.get_trials(deepcopy=False) if t.number < self.n_reference]
            if not any(_in_progress(t) for t in reference):
                return [t for t in reference if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            time.sleep(self.poll_seconds)


def _in_progress(trial):
    """Waiting, or running in a live process (a trial of a killed worker is not waited for)."""
    if trial.state == TrialState.WAITING:
        return True
    if trial.state != TrialState.RUNNING:
        return False
    worker = trial.user_attrs.get("worker")
    if worker:
        return _alive(worker)
    return (datetime.now() - trial.datetime_start).total_seconds() < 60  # claimed, tag not yet written


def _register(study):
    """Record this worker in the study before it claims any trial (see _fail_orphans)."""
    study.set_user_attr(f"worker {_worker_id()}", datetime.now().isoformat(timespec="seconds"))


def _fail_orphans(study):
    """Mark RUNNING trials of dead processes on this machine as failed (they are enqueued again).

    A worker tags its trial right after claiming it. A trial killed in between has no tag:
    it is lost if no other registered worker still lives, or if it is 10 minutes old.
    """
    me = _worker_id()
    others = any(k.startswith("worker ") and k[7:] != me and _alive(k[7:]) for k in study.user_attrs)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if worker:
            lost = not _alive(worker)
        else:
            lost = not others or (datetime.now() - t.datetime_start).total_seconds() > 600
        if lost:
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
                pass  # another process got there first


def _refill(study, settings):
    """Fail orphaned trials; enqueue every grid point that no trial holds. Returns the work left."""
    _fail_orphans(study)
    trials = study.get_trials(deepcopy=False)
    holding = [t for t in trials if t.state in HOLDING]
    if settings["mode"] == "tpe":
        return settings["n_trials"] - len(holding)
    held = {t.user_attrs.get("point") for t in holding}
    errors = Counter(t.user_attrs.get("point") for t in trials if "error" in t.user_attrs)
    for params in grid_points(settings):
        key = point_key(params)
        if key not in held and errors[key] < MAX_ERRORS:
            study.enqueue_trial(params, user_attrs={"point": key})
    return sum(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))


# ---------------------------------------------------------------- data and one trial

def load_search_data(train_size=None, seed=0):
    """The prepared train/val split (prepared file if present), train optionally subsampled.

    train_size: size of a stratified subset of the training set (None: all of it); the
    validation set is always the full one, so scores are comparable across searches.
    Returns X_train (train_size, 784) float32, y_train, X_val (6000, 784), y_val.
    """
    from utils.data import PREPARED_PATH, load_prepared, prepare_fashion_mnist, stratified_split
    data = load_prepared() if PREPARED_PATH.is_file() else prepare_fashion_mnist()
    X, y = data["X_train"], data["y_train"]
    if train_size is not None and train_size < len(X):
        _, _, X, y = stratified_split(X, y, val_size=train_size, seed=seed)  # its "val" part is our subset
    return X, y, data["X_val"], data["y_val"]


def _skip(trial, reason):
    trial.set_user_attr("skipped", reason)
    raise _Skip(reason)


def _objective(trial, settings, data):
    """Train one configuration; returns its best validation accuracy."""
    trial.set_user_attr("worker", _worker_id())
    earlier = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number and t.state in HOLDING]
    if settings["mode"] == "grid":
        point = trial.user_attrs.get("point")
        if point is None:
            _skip(trial, "no grid point was waiting")
        twin = next((t.number for t in earlier if t.user_attrs.get("point") == point), None)
        if twin is not None:
            _skip(trial, f"duplicate of trial {twin}")
    elif len(earlier) >= settings["n_trials"]:
        _skip(trial, f"the budget of {settings['n_trials']} trials is used")

    config = {**MODEL_DEFAULTS, **settings["fixed"],
              **decode({name: _suggest(trial, name, spec) for name, spec in settings["space"].items()})}
    X, y, X_val, y_val = data
    model = mlp([X.shape[1], *config["hidden_sizes"], 10], config["activation"], config["dropout"],
                rng=settings["seed"])
    last = {"history": pd.DataFrame(columns=["val_acc"])}

    def report(history, _model):
        last["history"] = history
        epoch, val_acc = len(history), float(history.val_acc.iloc[-1])
        trial.report(val_acc, epoch)
        if settings["prune"] and trial.should_prune():
            raise optuna.TrialPruned(f"val_acc {val_acc:.4f} at epoch {epoch} is below the reference median")

    start = time.perf_counter()
    try:
        train(model, X, y, X_val, y_val, callback=report, progress=False, restore_best=False,
              num_epochs=settings["num_epochs"], seed=settings["seed"],
              **{k: v for k, v in config.items() if k in DEFAULTS})
    except TrainingDiverged as e:
        trial.set_user_attr("diverged", str(e))
        raise optuna.TrialPruned(f"diverged: {e}") from None
    except Exception as e:
        if not isinstance(e, optuna.TrialPruned):
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:1000])
        raise
    finally:
        _record(trial, last["history"], time.perf_counter() - start)
    return float(last["history"].val_acc.max())


def _record(trial, history, seconds):
    """Per-epoch curves and summary numbers, as user attributes of the trial."""
    curves = {c: [round(float(v), 5) for v in history[c]]
              for c in ("val_acc", "val_loss", "train_loss", "train_acc") if c in history}
    best = int(np.argmax(curves["val_acc"])) if len(history) else None
    trial.set_user_attr("history", curves)
    trial.set_user_attr("summary", {
        "val_acc": None if best is None else curves["val_acc"][best],
        "val_loss": None if best is None else curves["val_loss"][best],
        "best_epoch": None if best is None else best + 1, "epochs": len(history), "seconds": round(seconds, 3)})


# ---------------------------------------------------------------- workers

def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def work(spec, study_name, worker=0, threads=1, on_trial=None, child=False):
    """One worker: run waiting grid points (or TPE trials) until none are left.

    Each worker runs in its own process (or in the caller's, for a single worker), opens
    the storage itself and limits its BLAS threads, so that workers share the cores
    instead of fighting for them.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a skipped trial is no cause for a warning
    if child:  # terminate() from the parent: end the trial as failed, so the next run redoes it
        signal.signal(signal.SIGTERM, _raise_interrupt)
    storage = open_storage(spec)
    settings = optuna.load_study(study_name=study_name, storage=storage).user_attrs["search"]
    study = _load_study(storage, study_name, settings, worker)
    if _refill(study, settings) <= 0:
        return
    _register(study)
    data = load_search_data(settings["train_size"], settings["seed"])

    def after_trial(study, trial):
        if on_trial is not None:
            on_trial()
        if _refill(study, settings) <= 0:
            study.stop()

    with threadpool_limits(limits=threads):
        study.optimize(lambda trial: _objective(trial, settings, data), callbacks=[after_trial],
                       catch=(_Skip,), gc_after_trial=False)


class _Progress:
    """A tqdm bar over finished trials, read from the storage."""

    def __init__(self, study, settings, enabled):
        self.study = study
        total = settings["n_trials"] or math.prod(len(v) for v in settings["space"].values())
        self.bar = tqdm(total=total, desc=f"search {study.study_name}", unit="trial", disable=not enabled)
        self.update()

    def update(self):
        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        self.bar.n = min(len(done), self.bar.total)
        complete = [t.value for t in done if t.state == TrialState.COMPLETE]
        if complete:
            self.bar.set_postfix(best_val_acc=f"{max(complete):.4f}", refresh=False)
        self.bar.refresh()


def run_search(space=None, mode=None, n_trials=None, *, study_name="search", storage=None, n_workers=None,
               blas_threads=1, train_size=None, num_epochs=None, prune=None, seed=None, fixed=None,
               log_dir=None, progress=True):
    """Run (or resume, or join) a hyperparameter search; write and return its results table.

    space: dict name -> list of values (default DEFAULT_SPACE); see check_space.
    mode: "grid" (every point once) or "tpe" (n_trials trials chosen by Optuna's TPE).
    storage: None (journal file LOG_DIR/search_<study_name>.journal), a journal file path,
        or a database URL such as postgresql://user:pw@host/db for several machines.
    n_workers: worker processes on this machine (default: the cores this process may
        use). With 1 the trials run in this process.
    blas_threads: BLAS threads per worker (default 1). More help only on an idle machine
        with fewer workers than cores: on a busy one, BLAS threads that wait for a core
        spin, and a grid with 1 worker x 2 threads took 9x longer than with 1 x 1 here.
    train_size: stratified subset of the training set per trial (None: all 54,000);
        num_epochs: epochs per trial; prune: ReferencePruner on (default: tpe only);
        seed: model initialisation, shuffling, subset and grid order; fixed: other
        hyperparameters held constant, e.g. {"batch_size": 256, "activation": "tanh"}.
        Settings left None come from the study if it exists, else from DEFAULT_SETTINGS;
        given ones must match the study's.
    log_dir: where the CSV, the JSON and the default journal go (default LOG_DIR).
    Returns the DataFrame of results_table; writes it to log_dir/hyperparameter_search_results.csv
    and the best configuration to log_dir/best_hyperparameters.json.
    """
    log_dir = Path(log_dir or LOG_DIR)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    n_workers = cpus if n_workers is None else n_workers
    for name, value in (("n_workers", n_workers), ("blas_threads", blas_threads)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    spec = storage_spec(storage, study_name, log_dir)
    if spec.startswith("sqlite") and n_workers > 1:
        raise ValueError("SQLite is not safe for parallel workers; use the default journal file, or n_workers=1")
    study, settings = open_study(spec, study_name, space=space, mode=mode, n_trials=n_trials, fixed=fixed,
                                 train_size=train_size, num_epochs=num_epochs, prune=prune, seed=seed)
    bar = _Progress(study, settings, progress)
    try:
        if n_workers == 1:
            work(spec, study_name, 0, blas_threads, on_trial=bar.update)
        else:
            _run_workers(spec, study_name, n_workers, blas_threads, bar)
    finally:
        bar.update()
        bar.bar.close()
    table = results_table(study)
    save_results(table, settings, log_dir, study_name)
    return table


def _run_workers(spec, study_name, n_workers, threads, bar):
    # spawn, not fork: forking a process whose BLAS threads are running can deadlock the child.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=work, args=(spec, study_name, i, threads), kwargs={"child": True}, daemon=True)
             for i in range(n_workers)]
    try:
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            multiprocessing.connection.wait([p.sentinel for p in procs if p.is_alive()], timeout=1.0)
            bar.update()
    except BaseException:  # Ctrl-C: each worker fails its trial cleanly, the next run redoes it
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        raise
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {n_workers} search workers failed (exit codes {failed}); "
                           f"their errors are printed above. Run the search again to resume it.")


# ---------------------------------------------------------------- results

def results_table(study):
    """One row per trial, best validation accuracy first.

    Columns: trial, the searched hyperparameters (hidden_sizes as "256-128"), val_acc
    (best epoch; for a pruned trial the best before it stopped), val_loss (at that epoch),
    best_epoch, epochs (run), seconds, state (complete, pruned, failed, running, waiting),
    note (why it diverged or failed), val_acc_curve (JSON list, one value per epoch).
    Skipped duplicates and failed attempts whose point was run again are left out.
    """
    trials = study.get_trials(deepcopy=False)
    settings = study.user_attrs.get("search", {})
    names = list(settings.get("space", {}))
    held = {t.user_attrs.get("point") for t in trials if t.state in HOLDING}
    rows = []
    for t in trials:
        point = t.user_attrs.get("point")
        if "skipped" in t.user_attrs or (t.state == TrialState.FAIL and point is not None and point in held):
            continue
        params = decode(t.params or (json.loads(point) if point else {}))
        if not params:
            continue  # failed before its parameters were chosen
        summary = t.user_attrs.get("summary", {})
        note = t.user_attrs.get("diverged") or t.user_attrs.get("error") or ""
        rows.append({"trial": t.number,
                     **{n: _encode(n, params[n]) if n in params else None for n in names},
                     "val_acc": summary.get("val_acc"), "val_loss": summary.get("val_loss"),
                     "best_epoch": summary.get("best_epoch"), "epochs": summary.get("epochs"),
                     "seconds": summary.get("seconds"), "state": _STATE_NAMES[t.state],
                     "note": note, "val_acc_curve": json.dumps(t.user_attrs.get("history", {}).get("val_acc", []))})
    columns = ["trial", *names, "val_acc", "val_loss", "best_epoch", "epochs", "seconds", "state", "note", "val_acc_curve"]
    table = pd.DataFrame(rows, columns=columns)
    table[["val_acc", "val_loss", "seconds"]] = table[["val_acc", "val_loss", "seconds"]].astype(float)
    return table.sort_values(["val_acc", "trial"], ascending=[False, True], na_position="last", kind="stable") \
                .reset_index(drop=True)


_STATE_NAMES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


def best_config(table, settings, study_name=None):
    """The best complete trial as a JSON-able dict: model and training hyperparameters, val_acc, search facts."""
    complete = table[table.state == "complete"]
    if complete.empty:
        return None
    row = complete.iloc[0]
    searched = {n: row[n] for n in settings["space"]}
    config = {**MODEL_DEFAULTS, **settings["fixed"], **decode(searched)}
    return {**{k: _plain(v) for k, v in config.items()}, "val_acc": float(row.val_acc),
            "search": {"study": study_name, "trial": int(row.trial), "mode": settings["mode"],
                       "train_size": settings["train_size"], "num_epochs": settings["num_epochs"],
                       "best_epoch": int(row.best_epoch), "seed": settings["seed"]}}


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def save_results(table, settings, log_dir=None, study_name=None):
    """Write the table to CSV and the best configuration to JSON, each atomically. Returns their paths."""
    log_dir = Path(log_dir or LOG_DIR)
    csv_path, json_path = log_dir / RESULTS_CSV, log_dir / BEST_JSON
    with atomic_write(csv_path, "w") as f:
        table.to_csv(f, index=False)
    best = best_config(table, settings, study_name)
    if best is None:
        warnings.warn(f"no trial completed, so {json_path} was not written")
        return csv_path, None
    save_json(best, json_path)
    return csv_path, json_path


def load_best(path=None):
    """Read best_hyperparameters.json; returns (model_kwargs, train_kwargs).

    model = mlp([784, *model_kwargs["hidden_sizes"], 10], model_kwargs["activation"], model_kwargs["dropout"])
    history = train(model, ..., **train_kwargs)   # add num_epochs etc. as you like
    """
    best = json.loads(Path(path or LOG_DIR / BEST_JSON).read_text())
    return ({k: best[k] for k in MODEL_DEFAULTS if k in best},
            {k: v for k, v in best.items() if k in DEFAULTS})


# ---------------------------------------------------------------- command line

def main(argv=None):
    """python -m utils.search: run, resume or join a search; print the best results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Options left out come from the study if it exists (so joining "
                                       "needs only --study and --storage), else from the defaults.")
    p.add_argument("--study", default="search", help="study name (default: search)")
    p.add_argument("--storage", help="journal file path or database URL (default: LOG_DIR/search_<study>.journal)")
    p.add_argument("--workers", type=int, default=None, help="worker processes here (default: all cores)")
    p.add_argument("--blas-threads", type=int, default=1, help="BLAS threads per worker (default 1)")
    p.add_argument("--mode", choices=("grid", "tpe"))
    p.add_argument("--n-trials", type=int, help="trials of a tpe search")
    p.add_argument("--lr", type=float, nargs="+")
    p.add_argument("--hidden-sizes", nargs="+", metavar="SIZES", help="e.g. 256-128 128-64")
    p.add_argument("--l2-lambda", type=float, nargs="+")
    p.add_argument("--activation", nargs="+")
    p.add_argument("--fixed", nargs="+", metavar="NAME=VALUE", default=None,
                   help="hyperparameters held constant, e.g. batch_size=256 optimizer=adam")
    p.add_argument("--epochs", type=int, help=f"epochs per trial (default {DEFAULT_SETTINGS['num_epochs']})")
    p.add_argument("--train-size", type=int, help=f"training subset per trial (default {DEFAULT_SETTINGS['train_size']})")
    p.add_argument("--prune", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--seed", type=int)
    p.add_argument("--log-dir", help="where the CSV, JSON and default journal go (default: LOG_DIR)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        given = {"lr": a.lr, "l2_lambda": a.l2_lambda, "activation": a.activation,
                 "hidden_sizes": a.hidden_sizes and [_sizes(h) for h in a.hidden_sizes]}
        space = {k: v for k, v in given.items() if v is not None} or None
        fixed = None if a.fixed is None else dict(_assignment(f) for f in a.fixed)
        table = run_search(space, a.mode, a.n_trials, study_name=a.study, storage=a.storage, n_workers=a.workers,
                           blas_threads=a.blas_threads, train_size=a.train_size, num_epochs=a.epochs, prune=a.prune, seed=a.seed, fixed=fixed,
                           log_dir=a.log_dir, progress=not a.quiet)
    except ValueError as e:
        p.exit(2, f"error: {e}\n")
    print(table.drop(columns="val_acc_curve").head(10).round(4).to_string(index=False))
    print(f"results: {Path(a.log_dir or LOG_DIR) / RESULTS_CSV}")


def _sizes(text):
    try:
        return [int(s) for s in text.replace(",", "-").split("-")]
    except ValueError:
        raise ValueError(f"--hidden-sizes: expected layer sizes like 256-128, got {text!r}") from None


def _assignment(text):
    """--fixed NAME=VALUE -> (NAME, VALUE), the value read as JSON if it is JSON (256, 0.5, true)."""
    name, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--fixed: expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


if __name__ == "__main__":
    main()
