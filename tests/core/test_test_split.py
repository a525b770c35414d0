"""Test-set discipline: training and the search never read the test split; python -m utils evaluate does.

Every test here makes utils.core.datasets.load_split refuse "test" (and records what was asked),
then runs the real code path on the real Fashion-MNIST training files.
"""
import numpy as np
import pytest

from utils.commands import evaluate
from utils.commands import train as train_command
from utils.core import datasets, prepared
from utils.core.experiment import load_data
from utils.plumbing.config import load_config
from utils.plumbing.errors import DataFileError
from utils.search import run as search

QUICK = ["--set", "num_epochs=1", "model.hidden_sizes=[16]", "--quiet"]


@pytest.fixture
def no_test_split(monkeypatch, fashion_raw):
    """load_split refuses the test split; returns the list of splits asked for."""
    asked, real = [], datasets.load_split

    def guarded(dataset, split, *args, **kwargs):
        asked.append(split)
        if split == "test":
            raise AssertionError("the test split was read")
        return real(dataset, split, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_split", guarded)
    return asked


def test_the_train_command_never_reads_the_test_split_and_prints_no_test_score(no_test_split, tmp_path, capsys):
    train_command.main(["--out", str(tmp_path), *QUICK])
    out = capsys.readouterr().out
    assert (tmp_path / "best_model.npz").is_file() and no_test_split == ["train"]
    assert "validation accuracy" in out and "python -m utils evaluate" in out
    assert "test accuracy" not in out and "test loss" not in out


def test_a_search_trial_never_reads_the_test_split(no_test_split, tmp_path, monkeypatch):
    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "no_prepared_file"))  # the search prepares the data itself
    table = search.run_search({"lr": [0.05], "hidden_sizes": [[8]], "l2_lambda": [0.0]}, study_name="t",
                              out_dir=tmp_path / "out", workers=1, train_size=500, num_epochs=1, progress=False)
    assert list(table.state) == ["complete"] and np.isfinite(table.val_acc[0])
    assert no_test_split == ["train"]


def test_a_prepared_file_with_a_test_split_gives_training_and_the_search_none(tmp_path):
    rng = np.random.default_rng(0)
    data = {f"X_{s}": rng.standard_normal((n, 784)).astype(np.float32) for s, n in
            (("train", 30), ("val", 10), ("test", 10))}
    data.update({f"y_{s}": rng.integers(0, 10, n) for s, n in (("train", 30), ("val", 10), ("test", 10))})
    path = prepared.save_prepared(data, tmp_path / "p.npz")
    assert not {"X_test", "y_test"} & set(prepared.load_prepared(path))
    assert np.array_equal(prepared.load_prepared(path, include_test=True)["X_test"], data["X_test"])
    del data["X_test"], data["y_test"]
    prepared.save_prepared(data, tmp_path / "q.npz")
    with pytest.raises(DataFileError, match=r"holds no test split"):
        prepared.load_prepared(tmp_path / "q.npz", include_test=True)


def test_the_test_split_comes_only_when_asked_and_standardised_as_before(fashion_raw):
    cfg = load_config("mlp_fashion")
    data = load_data(cfg)
    assert not {"X_test", "y_test"} & set(data)
    full = load_data(cfg, include_test=True)
    assert np.array_equal(full["X_val"], data["X_val"]) and full["X_test"].shape == (10000, 784)
    (_, _), (X_raw, y_raw) = datasets.load_fashion_mnist()
    expected = (X_raw.reshape(10000, -1).astype(np.float32) / np.float32(255) - full["mean"]) / full["std"]
    np.testing.assert_allclose(full["X_test"], expected, atol=1e-5)
    assert np.array_equal(full["y_test"], y_raw)


def test_evaluate_is_where_the_test_split_is_read(no_test_split, tmp_path):
    """The guard above is real: the final test does ask for the test split."""
    train_command.main(["--out", str(tmp_path), *QUICK])
    with pytest.raises(AssertionError, match="the test split was read"):
        evaluate.report(tmp_path / "best_model.npz")
    assert no_test_split == ["train", "test"]
