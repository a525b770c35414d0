"""The safe-file reader's errors (utils/plumbing/files.py) and the exercise notebook's teacher-facing errors
(utils/teaching/exercise_notebook.py) in Chinese with NN_LANG=zh: one Chinese sentence with the description the
caller passes ("检查点 x.npz 有 N 字节，超过上限 M 字节"), paths, names and numbers kept, no English prose left;
and the same errors in English, unchanged."""
import gzip
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest

from utils.core import checkpoint, datasets, prepared
from utils.plumbing import files
from utils.plumbing.errors import CheckpointError, DataFileError
from utils.teaching import exercise_notebook
from utils.teaching.exercise_notebook import NotebookError

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
# Words that may stay in a Chinese message: names of formats, tools and values, not English prose.
NAMES = {"gzip", "tar", "gz", "zip", "npz", "npy", "NaN", "inf", "FIFO", "IDX", "CIFAR", "Jupyter", "ipynb",
         "dtype", "float32", "float64", "np", "savez", "stored", "deflate", "ZIP64", "JSON", "pickle", "Python"}


def english_left(message, kept):
    """The words of message that are neither one of kept (paths, names) nor in NAMES: English prose left over."""
    for k in sorted(kept, key=len, reverse=True):
        message = message.replace(k, " ")
    return [w for w in re.findall(r"[A-Za-z][A-Za-z0-9]+", message) if w not in NAMES]


def message_of(call, kind=ValueError):
    with pytest.raises(kind) as caught:
        call()
    return str(caught.value)


def idx_bytes(n=2000):
    """An IDX file of n uint8 labels."""
    return b"\0\0\x08\x01" + n.to_bytes(4, "big") + bytes(n)


def a_zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def npy_bytes(array):
    import io
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def cases(tmp_path):
    """{case: (the call, the error type, the English message, what a Chinese message keeps, its Chinese)}."""
    folder = tmp_path / "labels.idx"
    folder.mkdir()
    cut = tmp_path / "labels.idx.gz"
    cut.write_bytes(gzip.compress(idx_bytes())[:30])
    nan = tmp_path / "nan.npz"
    checkpoint.save_arrays(nan, {"W": np.array([1.0, np.nan], np.float32)}, {})
    member = a_zip(tmp_path / "member.npz", {"notes.txt": b"hello"})
    shaped = tmp_path / "shaped.npz"
    checkpoint.save_arrays(shaped, {"W": np.zeros((2, 3), np.float32)}, {})
    garbled = tmp_path / "garbled.npz"
    garbled.write_bytes(b"not a zip at all" * 4)
    tarball = tmp_path / "cifar-10-binary.tar.gz"
    two = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"exercise": "linear"}),
        nbformat.v4.new_code_cell("y = 2", metadata={"exercise": "linear"})])
    blanks = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("pass", metadata={"exercise": "relu"})])
    no_solutions = tmp_path / "solutions" / "06_exercises.py"
    return {
        "a directory for an IDX file": (
            lambda: datasets.read_idx(folder), DataFileError,
            f"{folder}: is a directory; expected an IDX file (a regular file)",
            [str(folder)], f"IDX 文件 {folder} 是目录，不是普通文件"),
        "a truncated gzip": (
            lambda: datasets.read_idx(cut), DataFileError,
            f"{cut}: corrupt gzip data (truncated: the stream ends early)",
            [str(cut)], f"{cut}：gzip 数据已损坏（被截断：数据流提前结束）"),
        "NaN in a checkpoint": (
            lambda: checkpoint.load_arrays(nan), CheckpointError,
            f"{nan}: array 'W' contains NaN or inf; expected finite numbers",
            [str(nan), "'W'"], f"{nan} 中的数组 'W' 含有 NaN 或 inf；应为有限的数值"),
        "a shape the architecture does not imply": (
            lambda: checkpoint.load_arrays(shaped, lambda meta: {"W": (3, 3)}), CheckpointError,
            f"{shaped}: array 'W' has shape (2, 3); the architecture implies (3, 3)",
            [str(shaped), "'W'", "(2, 3)", "(3, 3)"], f"{shaped} 中的数组 'W' 的形状为 (2, 3)；按模型结构应为 (3, 3)"),
        "a checkpoint member that is not an array": (
            lambda: checkpoint.load_arrays(member), CheckpointError,
            f"{member}: member 'notes.txt' is not a .npy array; expected only arrays",
            [str(member), "'notes.txt'"], f"{member}：成员 'notes.txt' 不是 .npy 数组；文件中应当只有数组"),
        "a garbled prepared data set": (
            lambda: prepared.load_prepared(garbled), DataFileError,
            f"{garbled}: not a zip archive (no end-of-directory record); expected an .npz file",
            [str(garbled)], f"{garbled}：不是 zip 压缩包（没有中央目录结束记录）；应为 .npz 文件"),
        "a tar.gz with too many entries": (
            lambda: files.read_tar_gz(tarball.read_bytes(), tarball, {}, 10 ** 6, max_members=2), DataFileError,
            f"{tarball}: more than 2 entries; expected a few data files",
            [str(tarball)], f"{tarball}：条目超过 2 个；应当只有几个数据文件"),
        "a second exercise cell of the same name": (
            lambda: exercise_notebook.reference_parts(two), ValueError,
            "cell 2: a second exercise cell named 'linear'",
            ["'linear'"], "第 2 个单元格：又一个名为 'linear' 的练习单元格（名称重复）"),
        "no solution for an exercise": (
            lambda: exercise_notebook.fill_solutions(blanks, {"linear": "pass\n"}), ValueError,
            "no solution for the exercise cells ['relu']; the solutions file has ['linear']",
            ["['relu']", "['linear']"], "练习单元格 ['relu'] 没有解答；解答文件中只有 ['linear']"),
        "no solutions file": (
            lambda: exercise_notebook.read_solutions(no_solutions), FileNotFoundError,
            f"[Errno 2] No such file or directory: '{no_solutions}'",
            [repr(str(no_solutions))], f"没有这个文件：'{no_solutions}'"),
        "a folder for a notebook": (
            lambda: exercise_notebook.read_notebook(folder), NotebookError,
            f"{folder}: is a directory; expected a Jupyter notebook (.ipynb) (a regular file)",
            [str(folder)], f"Jupyter 笔记本（.ipynb） {folder} 是目录，不是普通文件"),
    }


def make_tarball(path):
    import io
    import tarfile
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name in ("a.bin", "b.bin", "c.bin"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    path.write_bytes(out.getvalue())


CASES = ["a directory for an IDX file", "a truncated gzip", "NaN in a checkpoint", "a shape the architecture does not imply",
         "a checkpoint member that is not an array", "a garbled prepared data set", "a tar.gz with too many entries",
         "a second exercise cell of the same name", "no solution for an exercise", "no solutions file",
         "a folder for a notebook"]


@pytest.mark.parametrize("case", CASES)
def test_the_errors_come_in_chinese_with_the_values_kept(tmp_path, monkeypatch, case):
    make_tarball(tmp_path / "cifar-10-binary.tar.gz")
    call, kind, _, kept, chinese = cases(tmp_path)[case]
    monkeypatch.setenv("NN_LANG", "zh")
    message = message_of(call, kind)
    assert message == chinese
    assert CJK.search(message)
    assert all(k in message for k in kept)
    assert english_left(message, kept) == []


@pytest.mark.parametrize("case", CASES)
def test_the_errors_are_unchanged_in_english(tmp_path, monkeypatch, case):
    make_tarball(tmp_path / "cifar-10-binary.tar.gz")
    call, kind, english, _, _ = cases(tmp_path)[case]
    monkeypatch.setenv("NN_LANG", "en")
    assert message_of(call, kind) == english


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_special_file_the_kind_and_the_callers_description_make_one_sentence(tmp_path, monkeypatch, lang):
    fifo = tmp_path / "arrays.npz"
    os.mkfifo(fifo)
    monkeypatch.setenv("NN_LANG", lang)
    message = message_of(lambda: files.read_npz(fifo, 10, 10), DataFileError)
    assert message == {"zh": f".npz 文件 {fifo} 是命名管道（FIFO），不是普通文件",
                       "en": f"{fifo}: is a FIFO; expected an .npz file (a regular file)"}[lang]


def command(*args, lang):
    """python -m utils args in a subprocess with NN_LANG=lang; returns (exit code, stderr)."""
    env = {**os.environ, "NN_LANG": lang}
    p = subprocess.run([sys.executable, "-m", "utils", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                       env=env, timeout=300)
    return p.returncode, p.stderr


def test_evaluate_refuses_a_too_large_checkpoint_unread_in_chinese_and_in_english(tmp_path):
    big = tmp_path / "big.npz"
    with open(big, "wb") as f:
        f.truncate(checkpoint.MAX_FILE_BYTES + 1)  # sparse: no disk space used
    size, limit = f"{checkpoint.MAX_FILE_BYTES + 1:,}", f"{checkpoint.MAX_FILE_BYTES:,}"
    code, err = command("evaluate", big, lang="zh")
    assert code != 0
    assert err.strip().splitlines()[-1] == f"错误：检查点 {big} 有 {size} 字节，超过上限 {limit} 字节（未读取，已拒绝）"
    code, err = command("evaluate", big, lang="en")
    assert code != 0
    assert err.strip().splitlines()[-1] == (f"error: {big}: {size} bytes, more than the {limit} bytes a checkpoint "
                                            f"can have (refused unread)")


def test_the_grader_shows_a_bad_reference_in_chinese_and_in_english(tmp_path):
    folder = tmp_path / "reference.ipynb"
    folder.mkdir()
    code, err = command("grade", tmp_path, "--reference", folder, lang="zh")
    assert code != 0
    line = err.strip().splitlines()[-1]
    assert line.endswith(f"--reference: Jupyter 笔记本（.ipynb） {folder} 是目录，不是普通文件"), line
    assert english_left(line, [str(folder), "--reference"]) == []
    code, err = command("grade", tmp_path, "--reference", folder, lang="en")
    assert code != 0
    assert err.strip().splitlines()[-1] == (f"error: --reference: {folder}: is a directory; expected a Jupyter "
                                            f"notebook (.ipynb) (a regular file)")
