"""The workers of the hyperparameter search: one trial, the loop that runs trials, the processes.

A worker claims a waiting grid point (utils.search.engine keeps the queue), trains it with
the one training loop, reports every epoch (the pruner may stop it) and records its curves.
Worker processes are started with "spawn" (forking a process whose BLAS threads run can
deadlock), each with one BLAS thread, and end with their parent (PR_SET_PDEATHSIG). Told to
stop, a worker fails its trial cleanly, so the next run redoes the point at once.
"""
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from contextlib import contextmanager

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from utils.core.models import mlp
from utils.core.train import TrainingDiverged, train
from utils.plumbing.errors import SearchError
from utils.plumbing.language import _
from utils.search.engine import (
    HOLDING,
    N_REFERENCE,
    TRAIN_KEYS,
    decode,
    load_search_data,
    load_study,
    reference_points,
    refill,
    suggest,
)
from utils.search.storage import describe, exception_chain, masked, open_storage, storage_errors

POLL_SECONDS = 1.0  # how often a worker with nothing to start looks again


class _Skip(Exception):
    """This trial is a duplicate of a grid point, or beyond the trial budget."""


# ---------------------------------------------------------------- one trial

def _skip(trial, reason):
    trial.set_user_attr("skipped", reason)
    raise _Skip(reason)


def _objective(trial, settings, data):
    """Train one configuration; returns its best validation accuracy."""
    trial.study._storage.record_heartbeat(trial._trial_id)  # before the tag: a tagged trial has a heartbeat
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    earlier = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number and t.state in HOLDING]
    if settings["mode"] == "grid":
        point = trial.user_attrs.get("point")
        if point is None:
            _skip(trial, "no grid point was waiting")
        twin = next((t.number for t in earlier if t.user_attrs.get("point") == point), None)
        if twin is not None:
            _skip(trial, f"duplicate of trial {twin}")
        reference = point in reference_points(settings)
    else:
        if len(earlier) >= settings["n_trials"]:
            _skip(trial, f"the budget of {settings['n_trials']} trials is used")
        reference = settings["prune"] and sum(bool(t.user_attrs.get("reference")) for t in earlier) < N_REFERENCE
    if reference:
        trial.set_user_attr("reference", True)

    config = {**settings["fixed"],
              **decode({name: suggest(trial, name, spec) for name, spec in settings["space"].items()})}
    X, y, X_val, y_val = data
    model = mlp([X.shape[1], *config["hidden_sizes"], int(y.max()) + 1], config["activation"], config["dropout"],
                rng=settings["seed"])
    last = {"history": pd.DataFrame(columns=["val_acc"])}

    def report(history, _model):
        _stop_if_told()  # once an epoch, whatever happened to the signal's first KeyboardInterrupt
        last["history"] = history
        epoch, val_acc = len(history), float(history.val_acc.iloc[-1])
        with _interruptible(now=False):  # a storage write
            trial.report(val_acc, epoch)
            prune = settings["prune"] and trial.should_prune()
        if prune:
            raise optuna.TrialPruned(f"val_acc {val_acc:.4f} at epoch {epoch} is below the reference median")

    start = time.perf_counter()
    try:
        with _interruptible(now=True):
            train(model, X, y, X_val, y_val, callback=report, progress=False, restore_best=False,
                  num_epochs=settings["num_epochs"], seed=settings["seed"],
                  **{k: v for k, v in config.items() if k in TRAIN_KEYS})
    except TrainingDiverged as e:
        trial.set_user_attr("diverged", str(e))
        raise optuna.TrialPruned(f"diverged: {e}") from None
    except Exception as e:
        if not isinstance(e, (optuna.TrialPruned, *storage_errors())):
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


# ---------------------------------------------------------------- stop signals

# A worker told to stop (SIGTERM: its parent ended; SIGINT: Ctrl-C) fails its trial so that the
# next run redoes it at once. A KeyboardInterrupt raised in the middle of a storage write (Optuna
# starting or ending a trial) would leave the trial "running" until its heartbeat goes stale, so
# the signal only interrupts where nothing is being written: training and waiting. Elsewhere it
# is remembered and raised at the next such place. This holds in worker processes; a search run
# in the caller's process (workers=1) keeps the caller's Ctrl-C, and a trial interrupted inside
# a write there is failed when its heartbeat goes stale (utils.search.storage.HEARTBEAT).
_stop = {"signal": None, "now": False}


def _on_stop_signal(signum, frame):
    _stop["signal"] = signum
    if _stop["now"]:
        _stop["now"] = False
        raise KeyboardInterrupt(f"signal {signum}")


def _stop_if_told():
    if _stop["signal"] is not None:
        raise KeyboardInterrupt(f"signal {_stop['signal']}")


@contextmanager
def _interruptible(now):
    """Inside the block a stop signal raises KeyboardInterrupt at once (now=True) or is held (False)."""
    before = _stop["now"]
    try:
        _stop["now"] = now
        if now:
            _stop_if_told()
        yield
    finally:
        _stop["now"] = before
    if before:
        _stop_if_told()


def _die_with_parent(parent_pid):
    """SIGTERM when the parent dies, even by kill -9 (Linux prctl). Elsewhere only a parent that
    died before this call is noticed: a worker of a killed search then runs until the grid is done."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def work(url, study_name, worker=0, threads=1, on_trial=None):
    """One worker: run waiting grid points (or TPE trials) until none is left or running.

    Each worker opens the storage itself and limits its BLAS threads, so that workers share
    the cores instead of fighting for them. A worker that finds nothing to start waits while
    other trials run: one of them may be lost (a killed worker) and enqueued again.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a skipped trial is no cause for a warning
    storage = open_storage(url)
    settings = optuna.load_study(study_name=study_name, storage=storage).user_attrs["search"]
    study = load_study(storage, study_name, settings, worker)
    data = None

    current = {}

    def objective(trial):
        current["trial_id"] = trial._trial_id
        return _objective(trial, settings, data)

    def after_trial(study, trial):
        _stop_if_told()  # the trial is recorded; told to stop during its end, stop before the next one
        if on_trial is not None:
            on_trial()
        if refill(study, settings, opener=True)[0] <= 0:
            study.stop()
        _stop_if_told()

    with threadpool_limits(limits=threads):
        while True:
            _stop_if_told()
            waiting, pending = refill(study, settings)
            if waiting > 0:
                with _interruptible(now=True):
                    data = data or load_search_data(settings)
                try:
                    study.optimize(objective, callbacks=[after_trial], catch=(_Skip,), gc_after_trial=False)
                except (ValueError, AssertionError) as e:
                    if not _taken_away(study, current.get("trial_id"), e):
                        raise
            elif pending or study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                with _interruptible(now=True):
                    time.sleep(POLL_SECONDS)
                if on_trial is not None:
                    on_trial()
            else:
                return


def _taken_away(study, trial_id, error):
    """True when Optuna could not record this worker's trial because another process had failed it
    as lost: its heartbeat looked stale (this worker was starved of CPU). Its point is queued
    again, so the worker goes on with the next one (a real error in it shows up on that rerun).

    Optuna says "Cannot tell a FAIL trial." (ValueError), or, when the trial had ended without
    error, hides that behind its own "Should not reach." AssertionError.
    """
    said = any(isinstance(x, ValueError) and str(x).startswith("Cannot tell a ") for x in exception_chain(error))
    return said and trial_id is not None and study._storage.get_trial(trial_id).state.is_finished()


def child_main(url, study_name, worker, threads, parent_pid):
    """Entry point of a worker process: dies with its parent; a storage error ends it with a message, exit 3."""
    for signum in (signal.SIGTERM, signal.SIGINT):  # the trial ends as failed, so the next run redoes it
        signal.signal(signum, _on_stop_signal)
    _die_with_parent(parent_pid)
    try:
        work(url, study_name, worker, threads)
    except SearchError as e:
        print(_("search worker {worker}: {error}").format(worker=worker, error=e), file=sys.stderr)
        sys.exit(3)
    except storage_errors() as e:
        print(_("search worker {worker}: cannot write the search storage {url}: {error}").format(
            worker=worker, url=masked(url), error=describe(e)), file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt:  # Ctrl-C or the parent's end: the trial was failed, the next run redoes it
        sys.exit(130)


def run_workers(url, study_name, n_workers, threads, on_poll):
    """Run n_workers worker processes until the study is done; on_poll() about once a second."""
    # spawn, not fork: forking a process whose BLAS threads are running can deadlock the child.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=child_main, args=(url, study_name, i, threads, os.getpid()), daemon=True)
             for i in range(n_workers)]
    try:
        for p in procs:
            p.start()
        while any(p.is_alive() for p in procs):
            multiprocessing.connection.wait([p.sentinel for p in procs if p.is_alive()], timeout=1.0)
            on_poll()
    except BaseException:  # Ctrl-C: each worker fails its trial cleanly, the next run redoes it
        started = [p for p in procs if p.pid is not None]
        for p in started:
            p.terminate()
        for p in started:
            p.join()
        raise
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise SearchError(f"{len(failed)} of {n_workers} search workers failed (exit codes {failed}); their errors "
                          f"are printed above. Every finished trial is kept: fix the cause and run the same "
                          f"command again to resume.")
