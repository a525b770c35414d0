"""The results of a hyperparameter search: the table, the best configuration, what pruning saved, the plots.

Everything here reads a study of utils.search.run (or its results table, or the CSV read back)
and trains nothing.
"""
import json
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from optuna.trial import TrialState

from utils.plumbing import language
from utils.plumbing.files import atomic_write, save_json
from utils.plumbing.fonts import label
from utils.search.engine import HOLDING, decode, encode

RESULTS_CSV, BEST_JSON = "hyperparameter_search_results.csv", "best_hyperparameters.json"
# How shown() writes the numbers of a results table: the rest as pandas does.
FORMATS = {"lr": "{:g}", "l2_lambda": "{:g}", "val_acc": "{:.4f}", "val_loss": "{:.4f}", "seconds": "{:.1f}"}
_STATE_NAMES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


def results_table(study):
    """One row per trial, best validation accuracy first; equal scores put the simpler model first.

    Validation accuracy counts images, so two points often tie exactly, and which of them
    scores one image more can change with the CPU. A tie is broken by a fixed rule, never by
    which trial finished first: fewer hidden units, then the larger l2_lambda, then the
    smaller lr (for those that were searched), then the trial number.

    Columns: trial, the searched hyperparameters (hidden_sizes as "256-128"), val_acc
    (best epoch; for a pruned trial the best before it stopped), val_loss (at that epoch),
    best_epoch, epochs (run), seconds, state (complete, pruned, failed, running, waiting),
    note (why it diverged or failed), val_acc_curve (JSON list, one value per epoch).
    Skipped duplicates and failed attempts whose point was run again are left out.
    """
    trials = study.get_trials(deepcopy=False)
    names = list(study.user_attrs.get("search", {}).get("space", {}))
    held = {t.user_attrs.get("point") for t in trials if t.state in HOLDING}
    rows, seen = [], set()
    for t in trials:
        point = t.user_attrs.get("point")
        if "skipped" in t.user_attrs or (t.state == TrialState.FAIL and point is not None and point in held):
            continue
        if t.state == TrialState.WAITING and point in seen:
            continue  # enqueued twice at one instant: it will be skipped
        seen.add(point)
        params = decode(t.params or (json.loads(point) if point else {}))
        if not params:
            continue  # failed before its parameters were chosen
        summary = t.user_attrs.get("summary", {})
        note = t.user_attrs.get("diverged") or t.user_attrs.get("error") or ""
        rows.append({"trial": t.number, **{n: encode(n, params[n]) if n in params else None for n in names},
                     "val_acc": summary.get("val_acc"), "val_loss": summary.get("val_loss"),
                     "best_epoch": summary.get("best_epoch"), "epochs": summary.get("epochs"),
                     "seconds": summary.get("seconds"), "state": _STATE_NAMES[t.state],
                     "note": note, "val_acc_curve": json.dumps(t.user_attrs.get("history", {}).get("val_acc", []))})
    columns = ["trial", *names, "val_acc", "val_loss", "best_epoch", "epochs", "seconds", "state", "note",
               "val_acc_curve"]
    table = pd.DataFrame(rows, columns=columns)
    table[["val_acc", "val_loss", "seconds"]] = table[["val_acc", "val_loss", "seconds"]].astype(float)
    return ranked(table)


def ranked(table):
    """The table in the order of results_table: complete trials first (a pruned trial's score is
    from fewer epochs), best validation accuracy first, ties broken by the simpler model."""
    keys = pd.DataFrame({"rank": table.state.map({"complete": 0, "pruned": 1}).fillna(2),
                         "val_acc": -table.val_acc})
    if "hidden_sizes" in table:
        keys["units"] = table.hidden_sizes.map(lambda s: sum(int(n) for n in str(s).split("-") if n.isdigit()))
    if "l2_lambda" in table:
        keys["l2_lambda"] = -table.l2_lambda
    if "lr" in table:
        keys["lr"] = table.lr
    keys["trial"] = table.trial
    order = keys.sort_values(list(keys.columns), na_position="last", kind="stable").index
    return table.loc[order].reset_index(drop=True)


def best_config(table, settings, study_name=None):
    """The best complete trial as a JSON-able dict: model and training hyperparameters, val_acc, search facts."""
    complete = table[table.state == "complete"]
    if complete.empty:
        return None
    row = complete.iloc[0]
    config = {**settings["fixed"], **decode({n: _plain(row[n]) for n in settings["space"]})}
    return {**config, "val_acc": float(row.val_acc),
            "search": {"study": study_name, "trial": int(row.trial), "mode": settings["mode"],
                       "train_size": settings["train_size"], "num_epochs": settings["num_epochs"],
                       "best_epoch": int(row.best_epoch), "seed": settings["seed"]}}


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def save_results(table, settings, folder, study_name=None, warn=True):
    """Write the table to CSV and the best configuration to JSON, each atomically. Returns their paths."""
    folder = Path(folder)
    csv_path, json_path = folder / RESULTS_CSV, folder / BEST_JSON
    with atomic_write(csv_path, "w") as f:
        table.to_csv(f, index=False)
    best = best_config(table, settings, study_name)
    if best is None:
        if warn:
            warnings.warn(language._("no trial completed, so {path} was not written").format(path=json_path))
        return csv_path, None
    save_json(best, json_path)
    return csv_path, json_path


def header(column):
    """A column of a results table as a table shows it: a word (trial, epochs, seconds) or a measurement
    (val_acc, val_loss, best_epoch) in the reader's language, a searched hyperparameter (lr, hidden_sizes,
    l2_lambda...) as it is."""
    words = {"trial": language._("trial"), "epochs": language._("epochs"), "seconds": language._("seconds"),
             "state": language._("state"), "note": language._("note"), "val_acc": language._("val_acc"),
             "val_loss": language._("val_loss"), "best_epoch": language._("best_epoch")}
    return words.get(column, column)


def shown(table, columns):
    """table[columns] as a notebook shows it: numbers rounded (FORMATS), headers by header(), no index."""
    return (table[columns].style.format({k: f for k, f in FORMATS.items() if k in columns})
            .format_index(header, axis="columns").hide(axis="index"))


def pruning_savings(table, num_epochs):
    """What pruning saved, measured from the per-trial seconds.

    A pruned trial that ran e of num_epochs epochs in s seconds would have taken about
    s * num_epochs / e unpruned (epochs of one configuration take about equally long).
    Returns a dict: seconds (actual, all finished trials), seconds_without_pruning
    (estimated), saved (seconds), saved_fraction, pruned (count), trials (count).
    """
    done = table[table.state.isin(["complete", "pruned"]) & (table.epochs > 0)]
    actual = float(done.seconds.sum())
    full = float((done.seconds * np.where(done.state == "pruned", num_epochs / done.epochs, 1.0)).sum())
    return {"seconds": actual, "seconds_without_pruning": full, "saved": full - actual,
            "saved_fraction": (full - actual) / full if full else 0.0,
            "pruned": int((done.state == "pruned").sum()), "trials": len(done)}


# ---------------------------------------------------------------- plots (notebook 02)

def _searched_columns(results):
    """The hyperparameter columns of a results_table: those between "trial" and "val_acc"."""
    columns = list(results.columns)
    return columns[columns.index("trial") + 1:columns.index("val_acc")]


def _diverged(row):
    """Whether a results_table row is a trial that diverged or failed (no score to compare).

    A pruned trial has a note only if it diverged (the note is why); a failed one always failed.
    """
    note = row.get("note")
    return row["state"] == "failed" or (row["state"] == "pruned" and isinstance(note, str) and note.strip() != "")


def plot_search_heatmaps(results, value="val_acc"):
    """Validation accuracy of a grid search: learning rate x hidden sizes, one heatmap per l2_lambda.

    results: the DataFrame of results_table, or its CSV read back. Complete trials share one
    colour scale, whose range the colour bar's label states (a narrow range makes small
    differences look large: every cell also shows its value). A pruned trial is scored after
    fewer epochs, so it is neither coloured nor given a score to compare: its cell is grey and
    hatched, "pruned at epoch k". A trial that diverged or failed is marked so in words (and the
    title mentions it only then). If more hyperparameters were searched, each cell shows the best over them.
    """
    df = results.dropna(subset=["lr", "l2_lambda"]).astype({"hidden_sizes": str})
    df = df.assign(state=[("diverged" if _diverged(row) else row["state"]) for _, row in df.iterrows()])
    l2s, lrs = sorted(df["l2_lambda"].unique(), reverse=True), sorted(df["lr"].unique())
    sizes = sorted(df["hidden_sizes"].unique(), key=lambda s: [-int(n) for n in s.split("-")])  # widest first
    complete = df[df.state == "complete"]
    vmin, vmax = (complete[value].min(), complete[value].max()) if len(complete) else (0, 1)
    fig, axes = plt.subplots(1, len(l2s), figsize=(1.2 + 3.4 * len(l2s), 3.9), sharey=True,
                             squeeze=False, layout="constrained")
    image = None
    rank = {"complete": 0, "pruned": 1, "diverged": 2}
    for i, (ax, l2) in enumerate(zip(axes[0], l2s)):
        # Complete before pruned before diverged, best first: drop_duplicates keeps each cell's best trial.
        cells = df[df["l2_lambda"] == l2].assign(_c=lambda d: d.state.map(rank).fillna(3)) \
            .sort_values(["_c", value], ascending=[True, False]).drop_duplicates(["lr", "hidden_sizes"])
        grid = cells.pivot(index="lr", columns="hidden_sizes", values=value).reindex(index=lrs, columns=sizes)
        state = cells.pivot(index="lr", columns="hidden_sizes", values="state").reindex(index=lrs, columns=sizes)
        epochs = cells.pivot(index="lr", columns="hidden_sizes", values="epochs").reindex(index=lrs, columns=sizes)
        shown = np.ma.masked_where((state != "complete").to_numpy() | grid.isna().to_numpy(), grid.to_numpy(float))
        image = ax.imshow(shown, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        for r, c in np.argwhere(state.notna().to_numpy()):
            kind = state.iat[r, c]
            if kind == "complete" and not np.isnan(grid.iat[r, c]):
                v = grid.iat[r, c]
                light = (v - vmin) < 0.5 * (vmax - vmin)
                ax.text(c, r, f"{v:.3f}", ha="center", va="center", fontsize=8, color="white" if light else "black")
                continue
            if kind == "pruned":
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="0.85", hatch="///", edgecolor="0.6",
                                           lw=0))
                ep = epochs.iat[r, c]
                text = label("pruned at\nepoch {epoch}").format(epoch=f"{int(ep)}" if not np.isnan(ep) else "?")
            else:
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="#f4d6d6", lw=0))
                text = {"diverged": label("diverged"), "failed": label("failed")}.get(kind, kind)
            ax.text(c, r, text, ha="center", va="center", fontsize=7, color="black")
        ax.set_xticks(range(len(sizes)), sizes)
        ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
        ax.set_title(f"l2_lambda = {l2:g}")
        ax.set_xlabel(label("hidden sizes"))
        ax.set_ylabel(label("learning rate") if i == 0 else "")
    fig.colorbar(image, ax=axes[0], shrink=0.9,
                 label=label("validation accuracy ({value}) of complete trials;\ncolours span only {vmin:.3f} to "
                             "{vmax:.3f}").format(value=value, vmin=vmin, vmax=vmax))
    handles = [Patch(facecolor="0.85", hatch="///", edgecolor="0.6", label=label("pruned: not scored on this scale"))]
    diverged = bool((df.state.isin(["diverged", "failed"])).any())
    if diverged:
        handles.append(Patch(facecolor="#f4d6d6", label=label("diverged or failed")))
    axes[0, -1].legend(handles=handles, loc="upper right", bbox_to_anchor=(1, -0.18), fontsize=7, frameon=False)
    fig.suptitle(label("Validation accuracy per grid point (the number in each cell; hatched: pruned; red: diverged "
                       "or failed)") if diverged else
                 label("Validation accuracy per grid point (the number in each cell; hatched: pruned)"))
    return fig


def plot_search_curves(study_or_results, top=5):
    """Validation accuracy per epoch of the best complete trials (in colour) and of all the others (grey).

    study_or_results: an Optuna study of utils.search.run, or its results_table (or the CSV read back).
    Pruned trials stop early: their grey dashed curves end where the pruner stopped them.
    """
    results = study_or_results
    if not isinstance(results, pd.DataFrame):
        results = results_table(study_or_results)
    results = results.dropna(subset=["val_acc"])
    best = results[results.state == "complete"].sort_values("val_acc", ascending=False).iloc[:top]
    names = _searched_columns(results)
    fig, ax = plt.subplots(figsize=(9, 4.8), layout="constrained")
    for _, row in results.drop(index=best.index).iterrows():
        curve = json.loads(row["val_acc_curve"])
        ax.plot(range(1, len(curve) + 1), curve, color="0.8", lw=0.8, zorder=1,
                ls="--" if row["state"] == "pruned" else "-")
    for _, row in best.iterrows():
        curve = json.loads(row["val_acc_curve"])
        text = ", ".join(f"{n}={row[n]:g}" if isinstance(row[n], float) else f"{n}={row[n]}" for n in names)
        ax.plot(range(1, len(curve) + 1), curve, "o-", ms=3, zorder=2, label=f"{text}: {row['val_acc']:.4f}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label("epoch"))
    ax.set_ylabel(label("validation accuracy"))
    ax.set_title(label("Learning curves of the {n} best complete trials (grey: the other {others}, dashed: pruned)")
                 .format(n=len(best), others=len(results) - len(best)))
    ax.grid(alpha=0.3)
    if len(best):
        ax.legend(fontsize=8, loc="lower right")
    return fig
