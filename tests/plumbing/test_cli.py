"""The commands of the assignment's parts: train, evaluate; their run folders, the no-overwrite rule, their errors."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from utils.commands import evaluate
from utils.commands import train as train_command
from utils.core.checkpoint import load_model, save_model
from utils.core.datasets import CLASS_NAMES
from utils.core.models import mlp
from utils.plumbing import cli

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--set", "num_epochs=1", "model.hidden_sizes=[16]", "--quiet"]


def run(module, *args, env=None):
    """python -m module args, in a subprocess; returns (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "utils", module, *args], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, timeout=300)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fashion_raw):
    """One quick run of the default experiment into its own folder."""
    out = tmp_path_factory.mktemp("run")
    train_command.main(["--out", str(out), *QUICK])
    return out


def test_train_writes_checkpoint_history_and_the_whole_experiment(trained):
    model, meta = load_model(trained / "best_model.npz")
    assert meta["experiment"]["name"] == "mlp_fashion"
    assert meta["experiment"]["train"]["num_epochs"] == 1 and meta["experiment"]["model"]["hidden_sizes"] == [16]
    assert meta["dataset"] == "fashion_mnist" and meta["image_shape"] == [1, 28, 28]
    assert len(meta["class_names"]) == 10
    assert (trained / "best_model.history.csv").read_text().startswith("epoch,lr,train_loss")


def test_train_never_replaces_a_checkpoint_unless_asked(trained, capsys):
    before = (trained / "best_model.npz").read_bytes()
    with pytest.raises(SystemExit) as e:
        train_command.main(["--out", str(trained), *QUICK])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert f"{trained / 'best_model.npz'} exists" in err and "--overwrite" in err and "Traceback" not in err
    assert (trained / "best_model.npz").read_bytes() == before


def test_train_without_out_makes_a_new_run_folder_under_log_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("NN_LOG_DIR", str(tmp_path))
    monkeypatch.setattr(cli.time, "strftime", lambda fmt, *when: "20261129-120000")  # both calls in the same second
    first, second = cli.run_folder("mlp_fashion"), cli.run_folder("mlp_fashion")
    assert first.parent == tmp_path / "runs" and first.name.startswith("mlp_fashion-")
    first.mkdir(parents=True)
    assert cli.run_folder("mlp_fashion") != first and second == first


def test_evaluate_reports_from_the_checkpoint_alone(trained, tmp_path, capsys):
    evaluate.main([str(trained / "best_model.npz"), "--figures", str(tmp_path / "figs")])
    out = capsys.readouterr().out
    assert "test accuracy" in out and "confusion matrix" in out and "Ankle boot" in out
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "activations.png", "confusion_matrix.png", "weights_heatmaps.png"]


def test_evaluate_agrees_with_training(trained, capsys):
    r = evaluate.report(trained / "best_model.npz")
    assert r["confusion"].sum() == 10000 and r["confusion"].trace() == round(r["accuracy"] * 10000)
    assert r["per_class"]["recall"].between(0, 1).all()


@pytest.mark.parametrize("args, message", [
    (["--config", "configs/nope.toml"], "no config file at configs/nope.toml"),
    (["--set", "lr=fast"], "train.lr = 'fast': expected a number"),
    (["--set", "learning_rate=0.1"], "unknown key 'learning_rate'"),
    (["--set", "lr"], "expected KEY=VALUE"),
    (["--resume"], "--resume needs --out"),
])
def test_train_errors_are_one_line_without_traceback(args, message):
    code, out, err = run("train", *args, "--quiet")
    assert code == 1 and message in err and "Traceback" not in err, err


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no checkpoint at"),
    (lambda p: p.write_bytes(b"not a zip"), "not a readable .npz checkpoint"),
    (lambda p: p.mkdir(), ""),
])
def test_evaluate_errors_are_one_line_without_traceback(make, message, tmp_path):
    path = tmp_path / "model.npz"
    make(path)
    code, out, err = run("evaluate", str(path))
    assert code == 1 and message in err and "Traceback" not in err, err


@pytest.mark.parametrize("module", ["train", "evaluate", "search", "data", "grade"])
def test_every_command_shows_its_defaults(module):
    code, out, _ = run(module, "--help")
    assert code == 0 and "default" in out


def _folder_with_a_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best_model.npz").write_bytes(b"the best weights of an earlier run")
    return tmp_path / "run"


@pytest.mark.parametrize("args, words", [
    (lambda d: ["--out", str(d), "--resume"], ["nothing to resume from", "best_model.last.npz", "without --resume"]),
    (lambda d: ["--out", str(d / "new"), "--resume"], ["nothing to resume from", "new/best_model.last.npz"]),
    (lambda d: ["--threads", "0"], ["--threads must be an integer >= 1, got 0"]),
    (lambda d: ["--threads", "-5"], ["--threads must be an integer >= 1, got -5"]),
    (lambda d: ["--out", ""], ["--out ''", "empty folder name"]),
    (lambda d: ["--out", "  "], ["--out '  '", "empty folder name"]),
    (lambda d: ["--out", str(d / "best_model.npz")], ["best_model.npz is a regular file, not a folder"]),
    (lambda d: ["--out", str(d / "best_model.npz" / "sub")], ["best_model.npz is a regular file, not a folder"]),
    (lambda d: ["--set", "lr=0.01", "lr=0.02"], ["lr is given twice"]),
    (lambda d: ["--set", "extends=mlp_cifar10"], ["extends cannot be overridden"]),
    (lambda d: ["--set", "hidden_sizes=[65536, 65536]"], ["would allocate", "NN_MAX_WEIGHTS"]),
], ids=["resume-nothing", "resume-new-folder", "threads-0", "threads-negative", "out-empty", "out-blank",
        "out-file", "out-under-file", "set-twice", "set-extends", "set-too-big"])
def test_train_refuses_bad_options_before_any_work(args, words, tmp_path, capsys, monkeypatch):
    folder = _folder_with_a_checkpoint(tmp_path)
    before = sorted(p.name for p in folder.iterdir())
    monkeypatch.setattr(train_command, "load_data", lambda *a, **k: pytest.fail("the data was loaded"))
    with pytest.raises(SystemExit) as e:
        train_command.main([*args(folder), "--quiet"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (folder / "best_model.npz").read_bytes() == b"the best weights of an earlier run"



@pytest.mark.parametrize("change, words", [
    ({"mean": "abc"}, ["mean = 'abc'", "a finite number in [0, 1]"]),
    ({"std": 0}, ["std = 0", "(0, 1]"]),
    ({"class_names": ["a", "b"]}, ["class_names", "10 names"]),
    ({"experiment": "text"}, ["experiment = 'text'", "a table"]),
    ({"metrics": "x"}, ["metrics = 'x'", "a table"]),
    ({"dataset": "evil"}, ["dataset = 'evil'", "'fashion_mnist', 'cifar10'"]),
    ({"dataset": "cifar10", "image_shape": [3, 32, 32]}, ["dataset = 'cifar10'", "in_features = 784"]),
], ids=["mean", "std", "class-names", "experiment", "metrics", "dataset-evil", "dataset-cifar10"])
def test_evaluate_refuses_a_bad_record_in_one_line(change, words, tmp_path, capsys, monkeypatch):
    record = {"dataset": "fashion_mnist", "mean": 0.286, "std": 0.353, "image_shape": [1, 28, 28],
              "class_names": list(CLASS_NAMES), "experiment": {"name": "x"}, "metrics": {"val_acc": 0.5}}
    save_model(mlp([784, 4, 10], rng=0), tmp_path / "m.npz", **{**record, **change})
    monkeypatch.setattr(evaluate.datasets, "load_fashion_mnist", lambda *a: pytest.fail("the data was loaded"))
    with pytest.raises(SystemExit) as e:
        evaluate.main([str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "Traceback" not in err and str(tmp_path / "m.npz") in err
    for w in words:
        assert w in err, err
