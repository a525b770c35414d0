"""The engine of the hyperparameter search: the grid as a queue, the study, the pruner, the data.

The storage (utils.search.storage) is Optuna's database storage, SQLite on one machine or
PostgreSQL across machines; Optuna's heartbeats find the trials of killed workers; the
workers that run the trials are in utils.search.workers. What is left to this file:

- The grid as a queue: every grid point is enqueued as a waiting trial and a worker claims
  one atomically (SQLite: every transaction is BEGIN IMMEDIATE, so two processes cannot
  both claim one waiting trial). A point whose trial was lost (killed, Ctrl-C, error) is
  enqueued again; if two processes enqueue a point at once, the earlier trial runs and the
  later one is skipped ("skipped" user attribute, state FAIL, left out of the results).
  Optuna's GridSampler hands out points as trials start and never reruns a lost one.
- ReferencePruner, whose decisions do not depend on the number of workers.
"""
import itertools
import json
import warnings
from collections import Counter
from datetime import datetime

import numpy as np
import optuna
from optuna.trial import TrialState

from utils.core.experiment import load_data
from utils.core.prepared import load_prepared, prepared_path
from utils.core.preprocess import stratified_split
from utils.plumbing.config import SCHEMA
from utils.plumbing.errors import SearchError
from utils.plumbing.language import _
from utils.search import storage as search_storage
from utils.search.storage import masked, open_storage

TRAIN_KEYS = tuple(k for k in SCHEMA["train"] if k != "num_epochs")  # num_epochs and seed: the search's
HOLDING = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_ERRORS = 2      # a point whose trial raised this often is not enqueued again
N_REFERENCE = 8     # the pruner's yardstick: the first 8 points of the shuffled grid


# ---------------------------------------------------------------- grid points and parameters

def encode(name, value):
    """Optuna's categorical choices must be None, bool, int, float or str: [256, 128] -> "256-128"."""
    return "-".join(map(str, value)) if name == "hidden_sizes" else value


def decode(params):
    """Trial parameters -> hyperparameters: "256-128" -> [256, 128]; the rest unchanged."""
    return {k: [int(s) for s in v.split("-")] if k == "hidden_sizes" else v for k, v in params.items()}


def point_key(params):
    return json.dumps(params, sort_keys=True)


def grid_points(settings):
    """Every point of the grid as encoded trial parameters, in a seeded shuffled order.

    Shuffled so that the first points, the pruner's yardstick, spread over the grid.
    """
    names = list(settings["space"])
    grid = itertools.product(*([encode(n, v) for v in settings["space"][n]] for n in names))
    points = [dict(zip(names, values)) for values in grid]
    order = np.random.default_rng(settings["seed"]).permutation(len(points))
    return [points[i] for i in order]


def suggest(trial, name, spec):
    if isinstance(spec, list):
        return trial.suggest_categorical(name, [encode(name, v) for v in spec])
    if all(isinstance(x, int) for x in (spec["low"], spec["high"])):
        return trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"])
    return trial.suggest_float(name, spec["low"], spec["high"], log=spec["log"])


# ---------------------------------------------------------------- study and queue

def load_study(storage, study_name, settings, worker=0):
    if settings["mode"] == "grid":  # every trial is enqueued; the sampler only fills a surplus trial
        sampler = optuna.samplers.RandomSampler(seed=settings["seed"])
    else:  # constant_liar: running trials count as observed, so parallel workers spread out
        sampler = optuna.samplers.TPESampler(seed=settings["seed"] + worker, constant_liar=True,
                                             n_startup_trials=min(10, max(1, settings["n_trials"] // 3)))
    pruner = ReferencePruner(last_step=settings["num_epochs"]) if settings["prune"] else optuna.pruners.NopPruner()
    return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)


def open_study(url, study_name, settings, given):
    """Create the study or join it; enqueue the missing grid points. Returns (study, settings, created).

    settings: checked settings; given: names the caller set. A given setting that differs
    from the study's raises SearchError.
    """
    storage = open_storage(url)
    try:
        optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        created = False
    probe = optuna.load_study(study_name=study_name, storage=storage)
    if probe.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise SearchError(_("study {study} in {url} is not a maximisation; choose another name").format(
            study=repr(study_name), url=masked(url)))
    stored = probe.user_attrs.get("search")
    if stored is None:  # new, or its creator has not written it yet: the same command writes the same
        probe.set_user_attr("search", settings)
        stored = optuna.load_study(study_name=study_name, storage=storage).user_attrs["search"]
    for name in given:
        if settings[name] != stored[name]:
            raise SearchError(_("study {study} in {url} was created with {name}={stored}, not {given}; leave {name} "
                                "out (or use the same config) to continue it, or choose another study name or "
                                "storage").format(study=repr(study_name), url=masked(url), name=name,
                                                  stored=repr(stored[name]), given=repr(settings[name])))
    study = load_study(storage, study_name, stored)
    refill(study, stored, opener=True)
    return study, stored, created


def reference_points(settings):
    return {point_key(p) for p in grid_points(settings)[:N_REFERENCE]} if settings["prune"] else set()


def fail_lost(study):
    """Fail the trials of dead workers: stale heartbeats (Optuna), or killed before the first beat."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # A worker's first act in a trial is a heartbeat, then the "worker" tag (see _objective), so
        # an untagged trial may have no heartbeat to go stale. Ten grace periods: clocks of machines differ.
        if "worker" not in t.user_attrs and (datetime.now() - t.datetime_start).total_seconds() > \
                10 * search_storage.HEARTBEAT["grace_period"]:
            try:
                study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
                pass  # another process got there first


def refill(study, settings, opener=False):
    """Fail lost trials; enqueue the grid points that no trial holds. Returns (waiting, pending).

    waiting: trials left to start now (tpe: the budget left); pending: points held back.
    With pruning, the reference points run first, all of them, so the pruner never waits for
    them. The other points are enqueued by an opener (the process starting the search, or the
    worker that saw a trial finish), else by anyone a minute after the last reference trial
    finished: processes that all enqueued at that instant would enqueue every point twice.
    """
    fail_lost(study)
    trials = study.get_trials(deepcopy=False)
    holding = [t for t in trials if t.state in HOLDING]
    if settings["mode"] == "tpe":
        return settings["n_trials"] - len(holding), 0
    held = {t.user_attrs.get("point") for t in holding}
    errors = Counter(t.user_attrs.get("point") for t in trials if "error" in t.user_attrs)
    missing = [p for p in grid_points(settings) if point_key(p) not in held and errors[point_key(p)] < MAX_ERRORS]
    reference = reference_points(settings)
    done = [t for t in trials if t.state in FINISHED and t.user_attrs.get("point") in reference]
    given_up = {k for k, n in errors.items() if n >= MAX_ERRORS}
    if reference - {t.user_attrs["point"] for t in done} - given_up:  # phase one: the reference points only
        missing = [p for p in missing if point_key(p) in reference]
    elif not opener and done and (datetime.now() - max(t.datetime_complete for t in done)).total_seconds() < 60:
        return sum(t.state == TrialState.WAITING for t in trials), len(missing)
    for params in missing:
        study.enqueue_trial(params, user_attrs={"point": point_key(params)})
    return sum(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False)), 0


class ReferencePruner(optuna.pruners.BasePruner):
    """Median pruning whose decisions do not depend on the number of workers or their timing.

    Optuna's MedianPruner compares a trial with the trials completed *so far*: with parallel
    workers that depends on which finished first, so two runs of one grid prune different
    points. Here the yardstick is fixed: the reference trials (grid: the first N_REFERENCE
    points of the shuffled grid, which finish before any other point starts; tpe: the first
    trials) run in full, and a later trial is pruned at epoch e >= n_warmup_steps when its
    best val_acc so far is below the median of their best val_acc up to epoch e. Never at the
    last epoch (last_step): stopping there saves nothing and would hide a complete trial's score.
    """

    def __init__(self, n_warmup_steps=2, last_step=None):
        self.n_warmup_steps, self.last_step = n_warmup_steps, last_step

    def prune(self, study, trial):
        step = trial.last_step
        if (trial.user_attrs.get("reference") or step is None or step < self.n_warmup_steps
                or (self.last_step is not None and step >= self.last_step)):
            return False
        yardstick = [max(v for s, v in t.intermediate_values.items() if s <= step)
                     for t in study.get_trials(deepcopy=False, states=FINISHED)
                     if t.user_attrs.get("reference") and min(t.intermediate_values, default=step + 1) <= step]
        return bool(yardstick) and max(trial.intermediate_values.values()) < float(np.median(yardstick))


# ---------------------------------------------------------------- data and one trial

def load_search_data(settings):
    """(X_train, y_train, X_val, y_val), X flattened; train subsampled to train_size (stratified).

    The data set is the base experiment's (settings["data"]); the validation set is always
    the full one, so scores are comparable across searches.
    """
    data = _load_base_data(settings)
    X, y = data["X_train"].reshape(len(data["X_train"]), -1), data["y_train"]
    size = settings["train_size"]
    if size is not None and size > len(X):
        raise SearchError(_("train_size={size} is larger than the training set ({n} images); use at most {most}, or "
                            "leave it out for all of them").format(size=size, n=f"{len(X):,}", most=len(X)))
    if size is not None and size < len(X):
        # its "val" part is our subset
        rest_X, rest_y, X, y = stratified_split(X, y, val_size=size, seed=settings["seed"])
    return X, y, data["X_val"].reshape(len(data["X_val"]), -1), data["y_val"]


def _load_base_data(settings):
    """Notebook 01's prepared file if it is this split (fast), else utils.core.experiment.load_data."""
    d = settings.get("data") or {"dataset": "fashion_mnist", "val_size": 6000, "augment": "none"}
    standard = {"dataset": "fashion_mnist", "val_size": 6000, "augment": "none"}
    prepared = prepared_path()
    if d == standard and settings["seed"] == 0 and prepared.is_file():
        return load_prepared(prepared)
    return load_data({"data": d, "seed": settings["seed"], "model": {"builder": "mlp"}})
