"""The errors that come from below the commands (checkpoints, data files, the prepared data set, the search's
settings and storage) in Chinese with NN_LANG=zh, naming what was wrong (paths, keys and numbers stay as they
are); and the same errors in English, unchanged."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from utils.core import checkpoint, datasets, prepared
from utils.core.checkpoint import load_model, load_weights, save_model
from utils.core.models import mlp
from utils.plumbing.errors import CheckpointError, ConfigError, DataFileError, SearchError
from utils.search import run as search_run
from utils.search import storage

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def command(*args, lang):
    """python -m utils args in a subprocess with NN_LANG=lang; returns (exit code, stderr)."""
    env = {**os.environ, "NN_LANG": lang}
    p = subprocess.run([sys.executable, "-m", "utils", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                       env=env, timeout=300)
    return p.returncode, p.stderr


def message_of(call, kind=ValueError):
    with pytest.raises(kind) as caught:
        call()
    return str(caught.value)


# ---------------------------------------------------------------- as the commands print them

def cases(tmp_path):
    """(command arguments, what stays in the message, the English line the command prints) for each case."""
    empty, bad, not_db = tmp_path / "empty", tmp_path / "bad.npz", tmp_path / "not.db"
    empty.mkdir()
    bad.write_bytes(b"garbage")
    not_db.write_bytes(b"junk bytes, no database")
    missing = ", ".join(f"{n}.gz" for n in datasets.SHA256)
    return {
        "no checkpoint": (["evaluate", tmp_path / "none.npz"], [str(tmp_path / "none.npz")],
                          f"error: no checkpoint at {tmp_path / 'none.npz'}"),
        "garbled checkpoint": (["evaluate", bad], [str(bad), "BadZipFile", ".npz", ".npy"],
                               f"error: {bad}: refused to load: not a readable .npz checkpoint (BadZipFile: File is "
                               f"not a zip file); expected a zip archive of .npy arrays"),
        "no data files": (["data", "--data-dir", empty], [str(empty), "Fashion-MNIST", missing],
                          f"error: Fashion-MNIST files missing in {empty}: {missing}"),
        "no [search] table": (["search", "--config", "mlp_fashion", "--out", tmp_path / "s1"],
                              ["'mlp_fashion'", "[search]", "search_fashion"],
                              "error: config 'mlp_fashion' has no [search] table; expected a search config such as "
                              "search_fashion"),
        "not a database": (["search", "--storage", not_db, "--out", tmp_path / "s2", "--quiet"],
                           [str(not_db), "SQLite", "b'junk byt'", "--storage"],
                           f"error: the search storage {not_db} is not an SQLite database (it starts with "
                           f"b'junk byt'); move it away or choose another --storage"),
    }


@pytest.mark.parametrize("case", ["no checkpoint", "garbled checkpoint", "no data files", "no [search] table",
                                  "not a database"])
def test_the_commands_print_these_errors_in_chinese_and_in_english_as_before(tmp_path, case):
    args, kept, english = cases(tmp_path)[case]
    code, err = command(*args, lang="zh")
    assert code == 1 and err.startswith("错误："), err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err
    assert len(CJK.findall(line)) > 8, line
    for text in kept:
        assert text in line, (text, line)
    ours = re.sub(r"（[A-Za-z]+: [^）]*）", "", line)  # a library's own message (zipfile's) stays as it is
    assert not re.search(r"\b(refused|expected|missing|not a|has no|choose)\b", ours), line
    code, err = command(*args, lang="en")
    assert code == 1 and err == english + "\n"


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_errors_in_chinese(zh, tmp_path):
    model = mlp([6, 5, 3], rng=0)
    path = tmp_path / "m.npz"
    save_model(model, path, dataset="mnist")
    said = message_of(lambda: load_model(path), CheckpointError)
    assert said.startswith(f"{path}：拒绝加载：记录中的 dataset = 'mnist'；应为：'fashion_mnist', 'cifar10' 之一")

    save_model(model, path, metrics={"val_acc": 1.5})
    said = message_of(lambda: load_model(path), CheckpointError)
    assert "metrics.val_acc = 1.5" in said and "准确率" in said

    arrays = dict(model.params, **{"0.W": np.zeros((2, 2), np.float32)})
    said = message_of(lambda: load_weights(mlp([6, 5, 3], rng=0), arrays, source="f.npz"), CheckpointError)
    assert said.startswith("f.npz：第 0 层（") and "0.W" in said and "(6, 5)" in said and "(2, 2)" in said
    assert "形状" in said

    conv = [{"type": "Conv2D", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 3}]
    said = message_of(lambda: checkpoint._architecture_shapes({"architecture": conv}, path) and
                      checkpoint.check_record({"architecture": conv}, path), CheckpointError)
    assert "padding = 3" in said and "0..2" in said and "卷积核" in said and "第 0 层（Conv2D）" in said


def test_checkpoint_errors_in_english_unchanged(en, tmp_path):
    model = mlp([6, 5, 3], rng=0)
    path = tmp_path / "m.npz"
    save_model(model, path, dataset="mnist")
    assert message_of(lambda: load_model(path), CheckpointError) == (
        f"{path}: refused to load: the record's dataset = 'mnist'; expected one of 'fashion_mnist', 'cifar10'")
    conv = [{"type": "Conv2D", "in_channels": 1, "out_channels": 2, "kernel_size": 3, "padding": 3}]
    assert message_of(lambda: checkpoint.check_record({"architecture": conv}, path), CheckpointError) == (
        f"{path}: refused to load: the record's architecture, layer 0 (Conv2D), padding = 3; expected an integer "
        "in 0..2 (below the kernel size 3)")
    arrays = dict(model.params, **{"0.W": np.zeros((2, 2), np.float32)})
    said = message_of(lambda: load_weights(mlp([6, 5, 3], rng=0), arrays, source="f.npz"), CheckpointError)
    assert said.startswith("f.npz: layer 0 (") and said.endswith(
        ": parameter 0.W has shape (6, 5) in the model but (2, 2) in the file")


# ---------------------------------------------------------------- data files and the prepared data set

def test_data_file_errors_in_chinese(zh):
    said = message_of(lambda: datasets.read_idx(b"\x00\x01\x02\x03", name="f.idx"), DataFileError)
    assert said.startswith("f.idx：不是 IDX 文件") and "0x0000TTDD" in said and "0x00010203" in said
    said = message_of(lambda: datasets.read_cifar10_batch(b"x" * 5, "b.bin"), DataFileError)
    assert said.startswith("b.bin：") and "CIFAR-10" in said and "5 字节" in said and "3073" in said
    said = message_of(lambda: datasets.load_split("mnist", "train"))
    assert said.startswith("load_split：") and "'mnist'" in said and "'fashion_mnist'" in said


def test_data_file_errors_in_english_unchanged(en):
    assert message_of(lambda: datasets.read_idx(b"\x00\x01\x02\x03", name="f.idx"), DataFileError) == (
        "f.idx: not an IDX file: expected magic 0x0000TTDD (TT a type code, DD the ndim), found 0x00010203")
    assert message_of(lambda: datasets.read_cifar10_batch(b"x" * 5, "b.bin"), DataFileError) == (
        "b.bin: truncated or not a CIFAR-10 batch: 5 bytes is not a positive whole number of 3073-byte records "
        "(1 label + 3072 pixels)")


def test_prepared_errors_in_chinese_and_in_english(monkeypatch, tmp_path):
    path = tmp_path / "none.npz"
    bad = {"num_classes": 3, "class_names": ("a", "b")}
    monkeypatch.setenv("NN_LANG", "zh")
    said = message_of(lambda: prepared.load_prepared(path), FileNotFoundError)
    assert said.startswith(f"找不到 {path}：") and "notebooks/01_data_preparation.ipynb" in said
    said = message_of(lambda: prepared._data_set_info(dict(bad), path), DataFileError)
    assert said.startswith(f"{path}：num_classes 为 3，") and "类别名" in said
    monkeypatch.setenv("NN_LANG", "en")
    assert message_of(lambda: prepared.load_prepared(path), FileNotFoundError) == (
        f"{path} not found: run notebooks/01_data_preparation.ipynb first or call prepare_fashion_mnist()")
    assert message_of(lambda: prepared._data_set_info(dict(bad), path), DataFileError) == (
        f"{path}: num_classes is 3, expected a positive integer equal to the number of class names")


# ---------------------------------------------------------------- the search's settings and storage

def test_search_errors_in_chinese(zh, tmp_path):
    defaults = search_run._defaults()
    said = message_of(lambda: search_run.check_settings({"bogus": 1}, defaults), SearchError)
    assert said.startswith("未知的搜索设置 ['bogus']；") and "n_trials" in said
    said = message_of(lambda: search_run.check_settings({"fixed": {"epochs": 3}}, defaults), ConfigError)
    assert said.startswith("fixed：没有超参数 'epochs'") and "lr" in said
    said = message_of(lambda: search_run.check_settings({"train_size": 10 ** 6}, defaults), SearchError)
    assert "train_size=1000000" in said and "54,000" in said and "6,000" in said and "验证集" in said
    (tmp_path / "file").write_text("")
    said = message_of(lambda: storage.make_folder(tmp_path / "file" / "out", "output folder"), SearchError)
    assert said.startswith(f"无法把 {tmp_path / 'file' / 'out'} 用作") and "普通文件" in said


def test_search_errors_in_english_unchanged(en, tmp_path):
    defaults = search_run._defaults()
    assert message_of(lambda: search_run.check_settings({"bogus": 1}, defaults), SearchError) == (
        "unknown search setting(s) ['bogus']; known: mode, space, n_trials, train_size, num_epochs, prune, seed, "
        "fixed, data")
    assert message_of(lambda: search_run.check_settings({"train_size": 10 ** 6}, defaults), SearchError) == (
        "train_size=1000000 is larger than the training set of fashion_mnist (54,000 images after the 6,000 "
        "validation images); use at most 54000, or leave it out for all of them")
    (tmp_path / "file").write_text("")
    assert message_of(lambda: storage.make_folder(tmp_path / "file" / "out", "output folder"), SearchError) == (
        f"cannot use {tmp_path / 'file' / 'out'} as the output folder: {tmp_path / 'file'} is a regular file, "
        "not a folder; choose another path")
