"""The project's key results stay where they should: regression bands measured over several seeds.

The bands gate on VALIDATION accuracy. The test set decides nothing, not even here: a band on
test accuracy would accept or reject every code change by its test score, which is model
selection on the test set by another name. The test set is read once, by python -m utils
evaluate (notebook 04). These tests rerun the key results and check them against bands:

* the search's winner must be among the top 3 complete trials of the committed search, and
  the experiment's config must hold one of those 3 (make test);
* the MLP of configs/mlp_fashion.toml, trained as `python -m utils train` trains it (about
  1 minute on one core), must reach a best validation accuracy in MLP_BAND, and LeNet-5
  (configs/lenet5_fashion.toml, about 3 minutes more) one in LENET_BAND: make test-slow, which
  CI runs (make test does not: notebook 03 trains the same MLP there).

How the bands were measured (one BLAS thread, this project's 2-core machine): the best
validation accuracy `python -m utils train --set seed=S` prints, for the seeds listed below
(the seed also draws the validation split: 0.907 to 0.916). Across CPUs the same seed moves
too (another CPU's BLAS kernels round differently and, over thousands of steps, train a slightly
different network), so each band is the measured range widened by about 0.005 on each side.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from utils.plumbing.config import load_config

ROOT = Path(__file__).resolve().parents[2]
# seed: best validation accuracy, python -m utils train --set seed=S --threads 1 on 2026-12-02;
# seed 0 is also what log/best_model.npz records (notebook 03, 2026-11-29).
MLP_MEASURED = {0: 0.9070, 1: 0.9162, 2: 0.9102, 3: 0.9090}
MLP_BAND = (0.902, 0.921)
# seed 0: the validation accuracy log/lenet5.npz records (notebook 05, 2026-12-02, after Adam was
# made to follow its equation exactly: 0.9155 before). One seed only: LeNet-5's full training takes too long to repeat here,
# so the band is as wide as the MLP's seeds and CPUs need.
LENET_MEASURED = {0: 0.9153}
LENET_BAND = (0.906, 0.925)


def test_the_bands_hold_what_was_measured():
    for measured, band in ((MLP_MEASURED, MLP_BAND), (LENET_MEASURED, LENET_BAND)):
        assert all(band[0] + 0.003 <= acc <= band[1] - 0.003 for acc in measured.values()), (measured, band)


def test_the_committed_checkpoints_record_the_measured_seed_0():
    from utils.core.checkpoint import load_model
    for name, measured in (("best_model.npz", MLP_MEASURED), ("lenet5.npz", LENET_MEASURED)):
        _, meta = load_model(ROOT / "log" / name)
        assert round(meta["metrics"]["val_acc"], 4) == measured[0], (name, meta["metrics"]["val_acc"])


def trained_val_accuracy(config, tmp_path):
    """Run `python -m utils train --config CONFIG --out TMP --quiet`; the best validation accuracy it prints."""
    pytest.importorskip("threadpoolctl")
    from utils.core.datasets import load_split
    try:
        load_split("fashion_mnist", "train")
    except (FileNotFoundError, OSError) as e:
        pytest.skip(f"Fashion-MNIST is not available here ({e}); run `python -m utils data`")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "utils", "train", "--config", str(ROOT / "configs" / f"{config}.toml"),
                          "--out", str(tmp_path), "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "test accuracy" not in run.stdout, run.stdout  # training never reports the test set
    found = re.findall(r"best epoch \d+: validation loss \d\.\d+, validation accuracy (\d\.\d+)", run.stdout)
    assert found, run.stdout
    return float(found[-1])


@pytest.mark.slow  # about 1 minute (notebook 03 trains the same model under make test): make test-slow
def test_the_mlp_reaches_its_validation_accuracy_band(tmp_path):
    acc = trained_val_accuracy("mlp_fashion", tmp_path)
    assert MLP_BAND[0] <= acc <= MLP_BAND[1], (
        f"configs/mlp_fashion.toml reached validation accuracy {acc:.4f}, outside the band {MLP_BAND} measured over "
        f"the seeds {MLP_MEASURED}: a change made the model worse (or better: then measure and move the band)")


@pytest.mark.slow  # about 3 minutes: make test-slow
def test_lenet5_reaches_its_validation_accuracy_band(tmp_path):
    acc = trained_val_accuracy("lenet5_fashion", tmp_path)
    assert LENET_BAND[0] <= acc <= LENET_BAND[1], (
        f"configs/lenet5_fashion.toml reached validation accuracy {acc:.4f}, outside {LENET_BAND} ({LENET_MEASURED})")


def test_the_search_winner_is_among_the_committed_top_three():
    results = pd.read_csv(ROOT / "log" / "hyperparameter_search_results.csv")
    best = json.loads((ROOT / "log" / "best_hyperparameters.json").read_text())
    space = list(load_config("search_fashion")["search"]["space"])
    top3 = results[results.state == "complete"].sort_values("val_acc", ascending=False).head(3)

    def key(values):
        return tuple("-".join(map(str, v)) if isinstance(v, list) else v for v in (values[k] for k in space))

    top3_keys = [key(row) for _, row in top3.iterrows()]
    assert key(best) in top3_keys, f"best_hyperparameters.json {key(best)} is not among the top 3 {top3_keys}"
    cfg = load_config("mlp_fashion")
    assert key({**cfg["model"], **cfg["train"]}) in top3_keys, (
        f"configs/mlp_fashion.toml holds {key({**cfg['model'], **cfg['train']})}, not one of the search's top 3 "
        f"{top3_keys}")
