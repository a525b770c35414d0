"""Notebooks 01-05 run end to end on CIFAR-10 (DATASET=cifar10), on a full-size synthetic file set.

The data are random bytes in the official binary format (tests/cifar_fake.py), so every shape,
file name and class name is CIFAR-10's while the models learn nothing (about 10% accuracy;
the notebooks assert no accuracy). To keep the run to minutes, NN_SET shortens the training
the configs ask for (2 epochs, a search on 2,000 images for 2 epochs); the notebooks
themselves run unchanged. About 15 minutes on two
busy cores, so only by make test-cifar.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cifar_fake import CLASSES, write_fake_cifar10

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0[1-5]_*.ipynb"))
SHORTEN = "train.num_epochs=2 search.train_size=2000 search.num_epochs=2"  # NN_SET: minutes, not hours


@pytest.mark.cifar  # about 15 minutes: make test-cifar
def test_notebooks_run_on_a_full_size_cifar10(tmp_path):
    write_fake_cifar10(tmp_path / "data")
    env = {**os.environ, "DATASET": "cifar10", "NN_DATA_DIR": str(tmp_path / "data"),
           "NN_LOG_DIR": str(tmp_path / "log"), "NN_STATIC_DIR": str(tmp_path / "static"),
           "NN_SET": SHORTEN, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    (tmp_path / "log").mkdir()
    for notebook in NOTEBOOKS:
        out = tmp_path / notebook.name
        run = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                              "--ExecutePreprocessor.timeout=1800", str(notebook), "--output", str(out)],
                             cwd=ROOT / "notebooks", env=env, capture_output=True, text=True)
        assert run.returncode == 0, f"{notebook.name} failed on CIFAR-10:\n{run.stderr[-3000:]}"
        text = out.read_text()
        assert "cifar10" in text and "fashion_mnist_prepared" not in text, notebook.name
    figures = sorted(p.name for p in (tmp_path / "static").iterdir())
    assert figures and all(name.startswith("cifar10_") for name in figures), figures
    assert (tmp_path / "log" / "cifar10_best_model.npz").is_file() and (tmp_path / "log" / "cifar10_lenet5.npz").is_file()
    per_class = json.loads((tmp_path / "04_testing.ipynb").read_text())
    shown = "".join("".join(o.get("text", "")) + "".join("".join(v) for v in o.get("data", {}).values()
                                                         if isinstance(v, (str, list)))
                    for c in per_class["cells"] for o in c.get("outputs", []))
    assert all(name in shown for name in CLASSES), "notebook 04 does not name every CIFAR-10 class"
