"""The command lines in Chinese (NN_LANG=zh): every --help, argparse's own words and the errors the commands
print; and the same commands in English, unchanged."""
import argparse
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import utils.__main__ as entry
from utils.commands import evaluate
from utils.commands import train as train_command
from utils.core.datasets import CLASS_NAMES
from utils.figures.errors import per_class_table
from utils.plumbing import cli, config, language, po, validate
from utils.plumbing.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["train", "evaluate", "search", "data", "grade"]
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
# Words that stay English in Chinese text: commands, library and file-format names, units, values.
KEEP = {"python", "utils", "Optuna", "SQLite", "URL", "BLAS", "NumPy", "CSV", "PNG", "Fashion-MNIST", "Debian",
        "TPE", "MB", "GiB", "study", "True", "False", "make", "solutions", "int", *COMMANDS}


def run(*args, lang="zh", columns=None):
    """python -m utils args in a subprocess with NN_LANG=lang; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "NN_LANG": lang, **({"COLUMNS": str(columns)} if columns else {})}
    p = subprocess.run([sys.executable, "-m", "utils", *args], cwd=ROOT, capture_output=True, text=True, env=env,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


def english_prose(text):
    """The English words of text that are not names, options, metavars, identifiers, paths or values."""
    words = []
    for token in CJK.sub(" ", text).split():
        if (token.startswith("-") or re.search(r"[\d_./<>=\[\]()%:@*'\"`]", token) or token.isupper()
                or token.strip(",;") in KEEP):
            continue
        words += re.findall(r"[A-Za-z]{2,}", token)
    return words


def prose_of_help(text):
    """The lines of a --help after its usage block (the usage is syntax: option names and metavars), without
    the invocations of the options and positional arguments ("  --out OUT", "  checkpoint") before their help."""
    return [re.sub(r"^  [^ ].*?( {2,}|$)", "", line) for line in text.split("\n\n", 1)[1].splitlines()]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_is_chinese_but_for_names_options_and_values(command):
    code, out, err = run(command, "--help")
    assert code == 0 and err == "", err
    assert out.startswith("用法：python -m utils " + command)
    assert "\n选项：\n" in out and "显示本帮助信息并退出" in out and "（默认：" in out
    english = {line: english_prose(line) for line in prose_of_help(out) if english_prose(line)}
    assert not english, f"English prose left in `python -m utils {command} --help`: {english}"


def test_the_chinese_help_is_wrapped_to_the_terminal_by_width():
    code, out, _ = run("train", "--help", columns=60)
    assert code == 0
    wide = [line for line in out.splitlines() if CJK.search(line) and language.width(line) > 60]
    assert not wide, wide
    assert "（默认：" in out and "位置参数" not in out  # train has no positional argument


def test_the_overview_of_the_commands_is_chinese_and_the_english_is_the_docstring():
    code, out, _ = run("--help")
    assert code == 0 and out.startswith("python -m utils COMMAND [ARGS]：本项目的命令行。")
    assert not [line for line in out.splitlines() if english_prose(line)]
    code, out, _ = run("--help", lang="en")
    assert code == 0 and out == entry.__doc__.strip() + "\n"


def test_the_descriptions_written_twice_agree_with_their_docstrings(en):
    """The search and grade parsers pass _() a literal copy of their module docstring's paragraphs."""
    search_run = pytest.importorskip("utils.search.run")
    grader = pytest.importorskip("utils.teaching.grader")
    flat = lambda text: " ".join(text.split())  # noqa: E731
    helps = {}
    for module in (search_run, grader):
        parser = {}
        real = cli.parser
        cli.parser = lambda prog, description, epilog=None: parser.update(d=description, e=epilog) or real(
            prog, description, epilog)
        try:
            with pytest.raises(SystemExit):
                module.main(["--help"])
        finally:
            cli.parser = real
        helps[module] = parser
    assert flat(helps[search_run]["d"]) == flat(search_run.__doc__.split("\n\n")[0])
    assert flat(helps[grader]["d"]) == flat(grader.__doc__.split("\n\n")[0])
    assert flat(helps[grader]["e"]) == flat(grader.__doc__.split("\n\n")[-1])


@pytest.mark.parametrize("args, chinese, english", [
    (["--set", "learning_rate=0.1"], ["错误：", "覆盖项中没有键 'learning_rate'"], "unknown key 'learning_rate'"),
    (["--set", "lr=fast"], ["train.lr = 'fast'", "应为区间 (0, 1000] 中的数"], "train.lr = 'fast': expected a number"),
    (["--set", "model.dropout=2"], ["model.dropout = 2", "[0, 1)"], "model.dropout = 2: expected a number in [0, 1)"),
    (["--set", "bogus.x=1"], ["没有 [bogus] 这个表"], "unknown table [bogus]"),
    (["--config", "configs/nope.toml"], ["configs/nope.toml 处没有配置文件", "mlp_fashion"],
     "no config file at configs/nope.toml"),
    (["--set", "lr"], ["--set：应为 KEY=VALUE", "'lr'"], "--set: expected KEY=VALUE (e.g. lr=0.01), got 'lr'"),
    (["--threads", "0"], ["--threads 必须是 >= 1 的整数，得到的是 0"], "--threads must be an integer >= 1, got 0"),
    (["--resume"], ["--resume 需要 --out"], "--resume needs --out"),
    (["--set", "hidden_sizes=[65536, 65536]"], ["将分配 4,347,133,962 个权重", "NN_MAX_WEIGHTS"], "would allocate"),
], ids=["unknown-key", "bad-value", "out-of-range", "unknown-table", "missing-file", "not-key-value", "threads",
        "resume", "too-big"])
def test_train_errors_are_chinese_in_chinese_and_unchanged_in_english(args, chinese, english, monkeypatch, capsys):
    monkeypatch.setattr(train_command, "load_data", lambda *a, **k: pytest.fail("the data was loaded"))
    for lang in ("zh", "en"):
        monkeypatch.setenv("NN_LANG", lang)
        with pytest.raises(SystemExit) as e:
            train_command.main([*args, "--quiet"])
        err = capsys.readouterr().err
        assert e.value.code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
        if lang == "zh":
            assert err.startswith("错误：") and all(w in err for w in chinese), err
        else:
            assert err.startswith("error: ") and english in err and not CJK.search(err), err


@pytest.mark.parametrize("args, chinese, english", [
    (["train", "--threads", "x"], "python -m utils train：错误：参数 --threads：无效的 int 值：'x'",
     "python -m utils train: error: argument --threads: invalid int value: 'x'"),
    (["train", "--bogus"], "python -m utils train：错误：无法识别的参数：--bogus",
     "python -m utils train: error: unrecognized arguments: --bogus"),
    (["evaluate"], "python -m utils evaluate：错误：缺少以下必需的参数：checkpoint",
     "python -m utils evaluate: error: the following arguments are required: checkpoint"),
    (["evaluate", "m.npz", "--figures"], "参数 --figures：需要一个值", "argument --figures: expected one argument"),
    (["nope"], "错误：没有命令 'nope'；可用的命令：data, train, search, evaluate, grade",
     "error: unknown command 'nope'; the commands: data, train, search, evaluate, grade"),
], ids=["bad-type", "unrecognized", "required", "no-value", "unknown-command"])
def test_bad_arguments_are_reported_in_chinese_with_the_usage(args, chinese, english):
    code, out, err = run(*args)
    assert code == 2 and chinese in err, err
    assert args == ["nope"] or err.startswith("用法：python -m utils")
    code, out, err = run(*args, lang="en")
    assert code == 2 and english in err and not CJK.search(err), err
    assert args == ["nope"] or err.startswith("usage: python -m utils")


def test_argparse_words_follow_the_language_in_process(monkeypatch, capsys):
    for lang, words in [("zh", ["无效的选择：'c'（可选：'a', 'b'）", "用法：prog"]),
                        ("en", ["invalid choice: 'c' (choose from 'a', 'b')", "usage: prog"])]:
        monkeypatch.setenv("NN_LANG", lang)
        p = cli.parser("prog", "description")
        p.add_argument("--x", choices=["a", "b"])
        p.add_argument("--n", nargs=2)
        for argv, word in [(["--x", "c"], words[0]), (["--n", "1"], "需要 2 个值" if lang == "zh" else
                                                       "expected 2 arguments")]:
            with pytest.raises(SystemExit):
                p.parse_args(argv)
            err = capsys.readouterr().err
            assert word in err and words[1] in err, err


def test_the_english_help_is_argparse_s_own(en, capsys):
    with pytest.raises(SystemExit):
        train_command.main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m utils train [-h]") and "\noptions:\n" in out
    assert "show this help message and exit" in out and "(default: 1)" in out and not CJK.search(out)


def test_config_and_argument_checks_speak_chinese_and_keep_their_english(monkeypatch):
    cases = [(lambda: config.load_config("mlp_fashion", {"lr": "fast"}), ConfigError,
              ["train.lr = 'fast'", "应为区间 (0, 1000] 中的数"], "train.lr = 'fast': expected a number in (0, 1000]"),
             (lambda: config.load_config("mlp_fashion", {"activation": "relux"}), ConfigError,
              ["model.activation = 'relux'", "以下之一：'relu'"], "expected one of 'relu', 'leaky_relu'"),
             (lambda: config.load_config("mlp_fashion", {"train.lrr": 0.1}), ConfigError,
              ["没有键 'train.lrr'", "是不是想写 'lr'", "[train]中可用的键"],
              "unknown key 'train.lrr' (did you mean 'lr'?); known in [train]:"),
             (lambda: validate.check_int("batch_size", 0, 1, 5), ValueError, ["batch_size 必须是整数", "1", "5"],
              "batch_size must be an integer between 1 and 5, got 0"),
             (lambda: validate.check_bool("nesterov", "no"), TypeError, ["nesterov 必须是 True 或 False", "'no'"],
              "nesterov must be True or False, got 'no' (str)"),
             (lambda: validate.check_image("Conv2D", np.zeros((1, 1, 2, 2)), 1, 5), ValueError,
              ["Conv2D", "2x2", "5x5 的卷积核"], "the image 2x2 is smaller than the 5x5 kernel")]
    for make, kind, chinese, english in cases:
        monkeypatch.setenv("NN_LANG", "zh")
        with pytest.raises(kind) as e:
            make()
        assert CJK.search(str(e.value)) and all(w in str(e.value) for w in chinese), str(e.value)
        monkeypatch.setenv("NN_LANG", "en")
        with pytest.raises(kind) as e:
            make()
        assert english in str(e.value) and not CJK.search(str(e.value)), str(e.value)


def test_the_experiment_line_and_the_per_class_table_are_shown_in_chinese(monkeypatch):
    cfg = config.load_config("mlp_fashion")
    table = per_class_table(np.arange(10), np.array([9, *range(1, 10)]), CLASS_NAMES)
    monkeypatch.setenv("NN_LANG", "en")
    assert config.describe(cfg).startswith("MLP with hidden layers ") and "epochs; fashion_mnist" in config.describe(cfg)
    assert evaluate.shown(table).equals(table) and evaluate.shown(table).index.name == "class"
    monkeypatch.setenv("NN_LANG", "zh")
    line = config.describe(cfg)
    assert line.startswith("多层感知机，隐藏层 ") and "学习率" in line and line.endswith("fashion_mnist")
    shown = evaluate.shown(table)
    assert "短靴" in shown.index and "召回率" in shown.columns and shown.index.name == "类别"
    assert shown.loc["T恤/上衣", "最常混淆为"] == "短靴"
    assert table.index[0] == "T-shirt/top"  # the report itself keeps the English names


def test_the_commands_catalog_is_complete_and_keeps_every_field():
    entries = [e for e in po.read(language.catalog_path("zh", "commands.po")) if e.msgid]
    assert len(entries) > 100
    fields = re.compile(r"\{[^{}]*\}|%\(\w+\)\w|%[sr]")
    bad = [e.msgid for e in entries if sorted(fields.findall(e.msgid)) != sorted(fields.findall(e.msgstr))]
    assert not bad, f"these translations lose or add a field of their English: {bad}"
    assert not [e.msgid for e in entries if not e.msgstr or e.fuzzy or not CJK.search(e.msgstr)]
    source = inspect.getsource(argparse)
    stale = [e.msgid for e in entries if any("argparse's own text" in c for c in e.comments)
             and repr(e.msgid)[1:-1] not in source and e.msgid not in source]
    assert not stale, f"argparse no longer uses these texts (a new Python?): {stale}"


def test_an_nn_lang_of_no_course_language_is_one_line_in_english(monkeypatch, capsys):
    monkeypatch.setenv("NN_LANG", "fr")
    with pytest.raises(SystemExit) as e:
        train_command.main(["--threads", "0"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.startswith("error: NN_LANG='fr' is not a language") and err.count("\n") == 1


def test_the_locale_alone_makes_the_help_chinese():
    env = {k: v for k, v in os.environ.items() if k not in ("NN_LANG", "LC_ALL", "LC_MESSAGES")}
    p = subprocess.run([sys.executable, "-m", "utils", "data", "--help"], cwd=ROOT, capture_output=True, text=True,
                       env={**env, "LANG": "zh_CN.UTF-8"}, timeout=300)
    assert p.returncode == 0 and p.stdout.startswith("用法：python -m utils data") and "显示本帮助信息并退出" in p.stdout


def test_the_evaluation_report_is_chinese_and_its_numbers_the_same(fashion_raw, tmp_path, monkeypatch, capsys):
    from utils.core.checkpoint import save_model
    from utils.core.models import mlp
    save_model(mlp([784, 4, 10], rng=0), tmp_path / "m.npz", dataset="fashion_mnist", mean=0.286, std=0.353,
               image_shape=[1, 28, 28], class_names=list(CLASS_NAMES), experiment={"name": "tiny"}, epoch=3,
               metrics={"val_acc": 0.5})
    printed = {}
    for lang in ("en", "zh"):
        monkeypatch.setenv("NN_LANG", lang)
        evaluate.main([str(tmp_path / "m.npz")])
        printed[lang] = capsys.readouterr().out
    en, zh = printed["en"], printed["zh"]
    assert "tiny, epoch 3, validation accuracy 0.5000" in en and "test accuracy" in en and "Ankle boot" in en
    assert "tiny，第 3 轮，验证准确率 0.5000" in zh and "测试准确率" in zh and "混淆矩阵（行：真实类别" in zh
    assert "短靴" in zh and "召回率" in zh and "Ankle boot" not in zh
    numbers = re.compile(r"\d+\.\d{4}")
    assert numbers.findall(en.split("\n")[1]) == numbers.findall(zh.split("\n")[1])  # the test loss and accuracy
