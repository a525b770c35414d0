"""Hyperparameter search on Optuna: a full grid or a budgeted Bayesian (TPE) search, defined by a config.

    python -m utils search                                        # configs/search_fashion.toml, all cores
    python -m utils search --config configs/search_fashion.toml --out log/runs/my-search
    python -m utils search --storage postgresql://user:pw@host/db # on every machine: they share the grid

Every trial is the config's experiment (configs/mlp_fashion.toml for search_fashion) with
the searched values put in, trained by the one training loop for the search's num_epochs
on train_size images; its score is the best validation accuracy. The search is pruned
(utils.search.engine.ReferencePruner: the same decisions with any number of workers),
parallel (utils.search.workers: processes with one BLAS thread each) and resumable: every
trial lives in a database (utils.search.storage: SQLite beside the results by default, or
PostgreSQL shared by several machines), so the same command with the same --out continues it.
The results, the best configuration and their plots are in utils.search.results.

Output, in a fresh folder log/runs/<config name>-<YYYYmmdd-HHMMSS>/ unless --out is given:
search.db (the storage), hyperparameter_search_results.csv (rewritten as trials finish) and
best_hyperparameters.json. Results are never replaced silently: an existing results file
that is not this study's needs --overwrite.

In Python: run_search_config(load_config("search_fashion"), out_dir=..., workers=...), or
run_search(space, ...) with the settings as arguments. Workers are started with "spawn",
so a script that uses workers > 1 needs the usual `if __name__ == "__main__":` guard.
"""
import math
import os

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from utils.core.train import hyperparameters
from utils.plumbing import cli, config
from utils.plumbing.config import MODEL_KEYS
from utils.plumbing.errors import ConfigError, SearchError
from utils.plumbing.language import _
from utils.search.engine import grid_points, open_study
from utils.search.results import BEST_JSON, RESULTS_CSV, pruning_savings, results_table, save_results
from utils.search.storage import describe, make_folder, masked, open_storage, sqlite_path, storage_error_in, storage_url
from utils.search.workers import run_workers, work

SETTINGS = ("mode", "space", "n_trials", "train_size", "num_epochs", "prune", "seed", "fixed", "data")
TRAIN_SIZES = {"fashion_mnist": 60000, "cifar10": 50000}  # training images before the validation split


# ---------------------------------------------------------------- settings

def settings_from_config(cfg, full_fixed=False):
    """A search config (utils.plumbing.config.load_config) -> the search settings (see check_settings).

    fixed: the experiment's model and training hyperparameters that are not searched (all of
    them with full_fixed), so that a trial is defined by the settings alone.
    """
    if "search" not in cfg:
        raise ConfigError(_("config {name} has no [search] table; expected a search config such as "
                            "{example}").format(name=repr(cfg.get('name')), example=config.DEFAULT_SEARCH))
    s = cfg["search"]
    fixed = {**{k: v for k, v in cfg["model"].items() if k != "builder"},
             **{k: v for k, v in cfg["train"].items() if k != "num_epochs"}}
    if cfg["model"]["builder"] != "mlp":
        raise ConfigError(_("config {name}: the search trains MLPs; its experiment's builder is {builder}").format(
            name=repr(cfg['name']), builder=repr(cfg['model']['builder'])))
    return {"mode": s.get("mode", "grid"), "space": s["space"], "n_trials": s.get("n_trials"),
            "train_size": s.get("train_size"), "num_epochs": s["num_epochs"], "prune": s.get("prune", False),
            "seed": cfg["seed"], "data": dict(cfg["data"]),
            "fixed": {k: v for k, v in fixed.items() if full_fixed or k not in s["space"]}}


def _section(name, where):
    """The config table a hyperparameter belongs to, or ConfigError."""
    for section in ("model", "train"):
        if name in config.SCHEMA[section] and name not in ("builder", "num_epochs"):
            return section
    known = [k for s in ("model", "train") for k in config.SCHEMA[s] if k not in ("builder", "num_epochs")]
    hint = _("; num_epochs and seed are settings of the search itself") if name in ("num_epochs", "seed") else ""
    raise ConfigError(_("{where}: unknown hyperparameter {name}{did_you_mean}{hint}; known: {known}").format(
        where=where, name=repr(name), did_you_mean=config.did_you_mean(name, known), hint=hint,
        known=", ".join(known)))


def check_settings(given, defaults):
    """given (None: use the default) over defaults -> the checked, canonical settings dict.

    Settings: mode ("grid" or "tpe"), space ({name: [values]}; tpe also {name: {low, high,
    log}}), n_trials (tpe only), train_size (None: all), num_epochs, prune, seed, fixed (the
    other hyperparameters, those of the base experiment: a given dict is put over them),
    data (the base experiment's [data] table). Raises ConfigError or SearchError.
    """
    unknown = set(given) - set(SETTINGS)
    if unknown:
        raise SearchError(_("unknown search setting(s) {names}; known: {known}").format(
            names=sorted(unknown), known=", ".join(SETTINGS)))
    s = {**defaults, **{k: v for k, v in given.items() if v is not None and k != "fixed"}}
    s["mode"] = config.check_value("search", "mode", s["mode"], _("search settings"))
    s["space"] = config.check_space(s["space"], s["mode"], _("search settings"))
    extra = given.get("fixed") or {}
    if not isinstance(extra, dict):
        raise SearchError(_("fixed must be a dict of hyperparameters held constant, got {value}").format(
            value=repr(extra)))
    for name in extra:
        if name in s["space"]:
            raise SearchError(_("{name} is both searched and fixed; remove it from one of them").format(name=name))
    s["fixed"] = {k: v for k, v in {**s["fixed"], **extra}.items() if k not in s["space"]}
    s["fixed"] = {k: config.check_value(_section(k, "fixed"), k, v, f"fixed {k}") for k, v in s["fixed"].items()}
    missing = [k for k in MODEL_KEYS if k not in s["fixed"] and k not in s["space"]]
    if missing:
        raise SearchError(_("the search needs {names} either searched or fixed").format(names=", ".join(missing)))
    if s["mode"] == "tpe":
        s["n_trials"] = config.check_value("search", "n_trials", s["n_trials"], _("search settings (mode tpe)"))
    elif s["n_trials"] is not None:
        raise SearchError(_("mode 'grid' runs every point of the grid; n_trials must be None, got {value}").format(
            value=repr(s['n_trials'])))
    for name in ("num_epochs", "prune"):
        s[name] = config.check_value("search", name, s[name], _("search settings"))
    s["seed"] = config.check_value("", "seed", s["seed"], _("search settings"))
    if s["train_size"] is not None:
        s["train_size"] = config.check_value("search", "train_size", s["train_size"], _("search settings"))
        d = s["data"] or {"dataset": "fashion_mnist", "val_size": 6000}
        available = TRAIN_SIZES[d["dataset"]] - d["val_size"]
        if s["train_size"] > available:
            raise SearchError(_("train_size={size} is larger than the training set of {dataset} ({available} "
                                "images after the {val_size} validation images); use at most {most}, or leave it "
                                "out for all of them").format(size=s['train_size'], dataset=d['dataset'],
                                                              available=f"{available:,}",
                                                              val_size=f"{d['val_size']:,}", most=available))
    _check_trials(s)
    return s


def _check_trials(s):
    """Every grid point's training hyperparameters pass the training loop's own check (e.g. nesterov needs sgd)."""
    names = [n for n in s["space"] if isinstance(s["space"][n], list)]
    for point in (grid_points({**s, "space": {n: s["space"][n] for n in names}}) if names else [{}]):
        values = {**s["fixed"], **{n: v for n, v in point.items() if n != "hidden_sizes"}}
        hyperparameters(**{k: v for k, v in values.items() if k in config.SCHEMA["train"]})


def _defaults(cfg=None):
    """The settings of a search config (default: configs/search_fashion.toml), as check_settings's defaults."""
    return settings_from_config(cfg if cfg is not None else config.load_config(config.DEFAULT_SEARCH), full_fixed=True)


# ---------------------------------------------------------------- running

def run_search(space=None, mode=None, n_trials=None, *, study_name="search", storage=None, out_dir=None,
               workers=None, blas_threads=1, train_size=None, num_epochs=None, prune=None, seed=None,
               fixed=None, data=None, overwrite=False, progress=True, config_defaults=None):
    """Run (or resume, or join) a hyperparameter search; write and return its results table.

    Settings (see check_settings) left None come from the study if it exists, else from the
    search config config_defaults (a loaded config; default: configs/search_fashion.toml, read
    once); given ones must match the study's.
    out_dir: where the results go (default: a fresh folder log/runs/<study_name>-<time>/).
    storage: None (out_dir/search.db), an SQLite file path, or a database URL such as
        postgresql://user:pw@host/db that several machines share.
    workers: worker processes on this machine (default: the cores this process may use);
        with 1 the trials run in this process. blas_threads: BLAS threads per worker (1:
        on a busy machine, threads that wait for a core spin; 1 worker x 2 threads took 9x
        longer than 1 x 1 here).
    overwrite: start the study afresh (delete it from the storage) and replace the results
        files. Without it, an existing study is resumed and results files in out_dir that
        belong to no study of the storage are refused.
    Returns the DataFrame of results_table; out_dir/hyperparameter_search_results.csv is
    rewritten as trials finish, out_dir/best_hyperparameters.json holds the best complete trial.
    """
    given = {"space": space, "mode": mode, "n_trials": n_trials, "train_size": train_size,
             "num_epochs": num_epochs, "prune": prune, "seed": seed, "fixed": fixed, "data": data}
    if not isinstance(study_name, str) or not study_name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise SearchError(_("study_name must be letters, digits, '-', '_' or '.', got {name}").format(
            name=repr(study_name)))
    settings = check_settings(given, _defaults(config_defaults))  # before touching the disk: bad input starts nothing
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = cpus if workers in (None, 0) else workers
    for name, value in (("workers", workers), ("blas_threads", blas_threads)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SearchError(_("{name} must be an integer >= 1, got {value}").format(name=name, value=repr(value)))
    try:
        out_dir = cli.run_folder(study_name, out_dir)
    except (ValueError, OSError) as e:
        raise SearchError(str(e)) from None
    url = storage_url(storage, out_dir)
    try:
        return _run(url, study_name, settings, given, out_dir, workers, blas_threads, overwrite, progress)
    except SearchError:
        raise  # already one line (e.g. "cannot open the search storage ...")
    except Exception as e:
        # Every step below touches the storage (opening the study, refilling the grid, the
        # trials, the results): a storage error in any of them, e.g. a full disk, is one line.
        cause = storage_error_in(e)
        if cause is None:
            raise
        raise SearchError(_("cannot write the search storage {url}: {error}").format(
            url=masked(url), error=describe(cause))) from None


def _run(url, study_name, settings, given, out_dir, workers, blas_threads, overwrite, progress):
    """run_search after its settings are checked: open or create the study, run the trials, save the table."""
    existed = _study_exists(url, study_name)
    if existed and overwrite:
        optuna.delete_study(study_name=study_name, storage=open_storage(url))
    if not overwrite and not existed:
        for name in (RESULTS_CSV, BEST_JSON):
            if (out_dir / name).exists():
                raise SearchError(_("{path} exists and is not from study {study} of {url}; pass --overwrite "
                                    "(overwrite=True) to replace it, or choose another folder with --out").format(
                    path=out_dir / name, study=repr(study_name), url=masked(url)))
    make_folder(out_dir, _("output folder"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress bar and table report instead
    names = [k for k, v in given.items() if v is not None]
    study, settings = open_study(url, study_name, settings, names if existed and not overwrite else [])[:2]
    bar = _Progress(study, settings, out_dir, progress)
    try:
        if workers == 1:
            work(url, study_name, 0, blas_threads, on_trial=bar.update)
        else:
            run_workers(url, study_name, workers, blas_threads, bar.update)
    finally:
        bar.close()
    table = results_table(study)
    _save(table, settings, out_dir, study_name, warn=True)
    return table


def run_search_config(cfg, *, out_dir=None, storage=None, workers=None, blas_threads=1, overwrite=False,
                      progress=True, study_name=None):
    """Run the search a config defines: cfg = load_config("search_fashion") (or another search config).

    The study is named after the config (cfg["name"]); workers default to the config's
    search.workers (0: one per core). See run_search for the rest.
    """
    s = settings_from_config(cfg)
    workers = cfg["search"].get("workers") if workers is None else workers
    study_name = cfg["name"] if study_name is None else study_name
    return run_search(s["space"], s["mode"], s["n_trials"], study_name=study_name, storage=storage,
                      out_dir=out_dir, workers=workers, blas_threads=blas_threads, train_size=s["train_size"],
                      num_epochs=s["num_epochs"], prune=s["prune"], seed=s["seed"], fixed=s["fixed"],
                      data=s["data"], overwrite=overwrite, progress=progress, config_defaults=cfg)


def _study_exists(url, study_name):
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return False  # do not create the file just to look
    return study_name in optuna.study.get_all_study_names(open_storage(url))


def _save(table, settings, out_dir, study_name, warn):
    try:
        save_results(table, settings, out_dir, study_name, warn=warn)
    except OSError as e:
        raise SearchError(_("cannot write the results into {folder}: {error}. The trials are kept in the storage; "
                            "free some space and run the same command again").format(
            folder=out_dir, error=e.strerror or e)) from None


class _Progress:
    """A tqdm bar over finished trials, read from the storage; rewrites the results CSV as trials finish."""

    def __init__(self, study, settings, out_dir, enabled):
        self.study, self.settings, self.out_dir, self.done = study, settings, out_dir, None
        total = settings["n_trials"] or math.prod(len(v) for v in settings["space"].values())
        self.bar = tqdm(total=total, desc=_("search {name}").format(name=study.study_name), unit="trial",
                        disable=not enabled)
        self.update()

    def update(self):
        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if len(done) != self.done:
            self.done = len(done)
            _save(results_table(self.study), self.settings, self.out_dir, self.study.study_name, warn=False)
        self.bar.n = min(len(done), self.bar.total)
        complete = [t.value for t in done if t.state == TrialState.COMPLETE]
        if complete:
            self.bar.set_postfix(best_val_acc=f"{max(complete):.4f}", refresh=False)
        self.bar.refresh()

    def close(self):
        self.bar.close()


# ---------------------------------------------------------------- command line

def main(argv=None):
    """python -m utils search: run, resume or join the search a config defines; print the best results."""
    # the description is the first line of the docstring above (tests/plumbing/test_cli_chinese.py checks it)
    p = cli.parser("python -m utils search", _("Hyperparameter search on Optuna: a full grid or a budgeted Bayesian "
                                               "(TPE) search, defined by a config."),
                   epilog=_("Resume: run the same command with --out pointing at the run folder. Join from another "
                            "machine: the same command with the same --storage URL."))
    p.add_argument("--config", default=config.DEFAULT_SEARCH, help=_("search config: a name in configs/ or a path"))
    p.add_argument("--out", help=_("output folder (default: a fresh log/runs/<config name>-<time>/)"))
    p.add_argument("--storage", help=_("SQLite file or database URL (default: <out>/search.db)"))
    p.add_argument("--study", help=_("study name (default: the config's name)"))
    p.add_argument("--workers", type=int,
                   help=_("worker processes here (default: the config's search.workers; 0: one per core)"))
    p.add_argument("--blas-threads", type=int, default=1, help=_("BLAS threads per worker"))
    p.add_argument("--train-size", type=int,
                   help=_("training images per trial (default: the config's search.train_size)"))
    p.add_argument("--epochs", type=int, help=_("epochs per trial (default: the config's search.num_epochs)"))
    p.add_argument("--fixed", nargs="+", metavar="NAME=VALUE", default=[],
                   help=_("hyperparameters held constant over the config's, e.g. batch_size=256 nesterov=true"))
    p.add_argument("--overwrite", action="store_true",
                   help=_("start the study afresh and replace existing results"))
    p.add_argument("--quiet", action="store_true", help=_("no progress bar"))
    return cli.run(lambda args: _main(args, p), argv)


def _main(argv, p):
    a = p.parse_args(argv)
    overrides = {f"search.{k}": v for k, v in (("train_size", a.train_size), ("num_epochs", a.epochs))
                 if v is not None}
    cfg = config.load_config(a.config, overrides=overrides)
    fixed = config.parse_assignments(a.fixed)
    s = settings_from_config(cfg)
    s["fixed"] = {**s["fixed"], **fixed}  # checked (and refused if also searched) by check_settings
    workers = cfg["search"].get("workers") if a.workers is None else a.workers
    out = cli.run_folder(cfg["name"], a.out)
    study = cfg["name"] if a.study is None else a.study
    table = run_search(s["space"], s["mode"], s["n_trials"], study_name=study, storage=a.storage, out_dir=out,
                       workers=workers, blas_threads=a.blas_threads,
                       train_size=s["train_size"], num_epochs=s["num_epochs"], prune=s["prune"], seed=s["seed"],
                       fixed=s["fixed"], data=s["data"], overwrite=a.overwrite, progress=not a.quiet,
                       config_defaults=cfg)
    print(table.drop(columns="val_acc_curve").head(10).round(4).to_string(index=False))
    saving = pruning_savings(table, s["num_epochs"])
    if saving["pruned"]:
        print(_("pruning: {pruned} of {trials} trials stopped early; {seconds:.0f} s of training instead of about "
                "{without:.0f} s ({saved:.0%} saved)").format(
            pruned=saving["pruned"], trials=saving["trials"], seconds=saving["seconds"],
            without=saving["seconds_without_pruning"], saved=saving["saved_fraction"]))
    print(_("results: {path}").format(path=out / RESULTS_CSV))

