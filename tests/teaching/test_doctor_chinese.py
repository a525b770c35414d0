"""The doctor in Chinese (NN_LANG=zh): its printout is Chinese, its diagnosis is the one it makes in English.

The findings keep their English inside (the ranking and the "probably caused by" marks match English
words); only printing translates them. So with NN_LANG=zh the same findings come in the same order with
the same English texts and signals, and every title, "measured", "why" and "fix" of the printout has a
Chinese translation (no English template left behind), with its numbers and identifiers kept.
"""
import copy
import pickle
import re

import numpy as np
import pandas as pd
import pytest

from tests.teaching.clusters import C, D, gaussian_clusters
from utils.core.models import mlp
from utils.core.optim import SGD, Adam
from utils.teaching.doctor import activation_stats, diagnose
from utils.teaching.findings import Finding, Text, _, shown

CJK = re.compile(r"[\u4e00-\u9fff]")
HEALTHY_HISTORY = pd.DataFrame({"epoch": [1, 2, 3], "lr": 0.05, "train_loss": [1.0, 0.6, 0.5],
                                "val_loss": [0.9, 0.7, 0.6], "val_acc": [0.6, 0.7, 0.75]})


@pytest.fixture(scope="module")
def data():
    """Four Gaussian clusters in 30 dimensions, standardised, in random order: 300 to train on, 100 to check."""
    X, y = gaussian_clusters()
    return X[:300], y[:300], X[300:], y[300:]


def healthy(activation="relu", dropout=0.0):
    return mlp([D, 32, 16, C], activation, dropout=dropout, rng=0).eval()


def zeroed():
    model = healthy()
    for p in model.params.values():
        p[...] = 0
    return model


def scaled(factor):
    model = healthy()
    for name, p in model.params.items():
        if name.endswith(".W"):
            p *= factor
    return model


def dead_first_layer():
    model = healthy()
    model.layers[0].params["b"][...] = -100.0
    return model


def nan_weight():
    model = healthy()
    model.params["0.W"][0, 0] = np.nan
    return model


def pixels(X):
    return np.round((X - X.min()) / (X.max() - X.min()) * 255)


# Planted problems covering every finding the doctor makes: (model, X, y, keyword arguments), from the data.
CASES = {
    "healthy": lambda d: (healthy(), d[2], d[3], {}),
    "raw pixels": lambda d: (healthy(), pixels(d[2]), d[3], {"optimizer": SGD(0.05)}),
    "zero weights": lambda d: (zeroed(), d[2], d[3], {}),
    "weights too large": lambda d: (scaled(10), d[2], d[3], {}),
    "dead ReLUs": lambda d: (dead_first_layer(), d[2], d[3], {}),
    "saturated sigmoid": lambda d: (healthy("sigmoid"), d[2] * 20, d[3], {}),
    "inputs in [0, 1]": lambda d: (healthy(), np.clip(d[2] * 0.35 + 0.29, 0, 1), d[3], {}),
    "lr too low": lambda d: (healthy(), d[2], d[3], {"optimizer": SGD(1e-6, momentum=0.9)}),
    "far-off inputs, Adam": lambda d: (healthy(), d[2] * 0.1 + 3, d[3], {"optimizer": Adam(1e-3)}),
    "NaN weights": lambda d: (nan_weight(), d[2], d[3], {}),
    "student bugs": lambda d: (healthy(dropout=0.5), d[0][:100], d[1][:100], {
        "X_train": d[0][np.argsort(d[1], kind="stable")], "y_train": np.sort(d[1]),
        "history": HEALTHY_HISTORY.assign(train_loss=[1.39, 1.385, 1.384])}),
    "NaN in the history": lambda d: (healthy(), d[2], d[3], {"history": HEALTHY_HISTORY.assign(
        train_loss=[1.0, np.nan, 0.5])}),
    "exploding, stuck at chance": lambda d: (healthy(), d[2], d[3], {"history": HEALTHY_HISTORY.assign(
        train_loss=[0.5, 0.6, 1.5], val_acc=[0.2, 0.25, 0.3])}),
}


def run(case, data, monkeypatch, lang):
    """The Diagnosis of case and its printout, with the reader's language lang ('en' or 'zh')."""
    model, X, y, kwargs = CASES[case](data)
    if case == "student bugs":  # the evaluation code left in train mode: dropout on
        kwargs["predict"] = lambda X: model.train().forward(X)
    monkeypatch.setenv("NN_LANG", lang)
    report = diagnose(model, X, y, **kwargs)
    return report, str(report)


def content(report):
    return [(f.problem, f.measured, f.why, f.fix, f.severity, f.caused_by) for f in report]


@pytest.mark.parametrize("case", CASES)
def test_the_diagnosis_is_the_same_in_both_languages_and_only_its_printout_changes(case, data, monkeypatch):
    english, english_text = run(case, data, monkeypatch, "en")
    chinese, chinese_text = run(case, data, monkeypatch, "zh")
    assert content(chinese) == content(english)  # same findings, same order, same English texts inside
    assert repr(chinese.signals) == repr(english.signals) and chinese.sample == english.sample  # repr: NaN too
    assert CJK.search(chinese_text) and not CJK.search(english_text)
    assert chinese_text.count("\n") == english_text.count("\n")  # the same lines, translated
    monkeypatch.setenv("NN_LANG", "en")
    assert str(chinese) == english_text  # printing follows the language now, not the one it was made in


@pytest.mark.parametrize("case", CASES)
def test_every_text_of_every_finding_is_translated(case, data, monkeypatch):
    report, _printed = run(case, data, monkeypatch, "zh")
    for finding in report:
        for field in ("problem", "measured", "why", "fix"):
            text = getattr(finding, field)
            assert isinstance(text, Text), (field, text)
            assert CJK.search(shown(text)), f"{field} of {finding.problem!r} is not translated: {shown(text)!r}"
            numbers = re.findall(r"\d+(?:\.\d+)?(?:e[+-]\d+)?", text)
            assert sorted(numbers) == sorted(re.findall(r"\d+(?:\.\d+)?(?:e[+-]\d+)?", shown(text))), (
                f"{field} of {finding.problem!r} lost or changed a number: {text!r} -> {shown(text)!r}")


def test_the_chinese_printout_keeps_the_numbers_identifiers_and_consequence_marks(data, monkeypatch):
    report, text = run("raw pixels", data, monkeypatch, "zh")
    assert text.startswith("1. 输入是原始像素值\n   测量值：输入范围 0..255")
    high = next(i for i, f in enumerate(report, 1) if f.problem == "the learning rate is too high")
    assert f"{high}. 学习率太高（很可能由第 1 条引起）" in text
    assert "这里它很可能是第 1 条（输入是原始像素值）的后果" in text and "先解决第 1 条" in text
    ratio = report.signals["update_ratio"]
    assert f"|ΔW| / |W| = {ratio:.2g}" in text and "utils.teaching.sanity.lr_range_test" in text
    assert "utils.core.preprocess.standardize" in text
    assert f"更新量与权重之比 {ratio:.3g}" in text  # the signals line: Chinese names, the same values
    assert "signals:" not in text and "measured:" not in text and "fix:" not in text


def test_nothing_wrong_signals_and_the_sample_note_in_chinese(data, monkeypatch):
    _x, _y, X, y = data
    monkeypatch.setenv("NN_LANG", "zh")
    report = diagnose(healthy(), np.concatenate([X] * 12), np.concatenate([y] * 12), seed=3)
    text = str(report)
    assert report == [] and text.startswith("没有发现问题\n信号：输入均值 ")
    assert "第 1 层死亡单元占比" in text and "过拟合小批量所需步数" in text
    assert "在从 1,200 张图像中随机抽取的 1,000 张（随机种子 3）上测量" in text
    monkeypatch.setenv("NN_LANG", "en")
    text = str(report)
    assert text.startswith("nothing wrong found\nsignals: input_mean ") and ", dead_1 " in text
    assert "measured on a random 1,000 of the 1,200 images (seed 3): its loss and accuracy are the sample's" in text


def test_the_student_bug_findings_in_chinese(data, monkeypatch):
    report, text = run("student bugs", data, monkeypatch, "zh")
    titles = ["被检查的图像与训练集重合", "模型在训练模式下评估：暂退法（dropout）开着", "训练标签是排好序的",
              "训练损失停在平台上"]
    assert all(title in text for title in titles), text
    assert "model.eval()" in text and "idx = rng.permutation(N)" in text and "ln(K)/2" in text


def test_a_finding_made_by_hand_with_plain_strings_still_prints(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    finding = Finding("my own check", "x is 3", "because", "do y", 1, caused_by=2)
    assert str(finding) == "my own check（很可能由第 2 条引起）\n   测量值：x is 3\n   原因：because\n   修正：do y"
    monkeypatch.setenv("NN_LANG", "en")
    assert str(finding) == "my own check (probably caused by #2)\n   measured: x is 3\n   why: because\n   fix: do y"


def test_a_text_is_its_english_and_survives_copies_and_pickles(monkeypatch):
    text = _("dead ReLU units in layer {i}", i=3)
    assert text == "dead ReLU units in layer 3" and text.startswith("dead ReLU")
    monkeypatch.setenv("NN_LANG", "zh")
    for twin in (copy.deepcopy(text), pickle.loads(pickle.dumps(text))):
        assert twin == text and twin.shown() == "第 3 层有死亡的 ReLU 单元"
    assert shown(0.5) == 0.5 and shown("plain") == "plain"


def test_the_doctors_errors_come_in_chinese(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    with pytest.raises(ValueError, match=r"activation_stats：X 的形状应为 \(N, features\)"):
        activation_stats(healthy(), np.zeros(3))
    with pytest.raises(ValueError, match="optimizer 必须是 utils.core.optim 的 SGD 或 Adam"):
        diagnose(healthy(), np.zeros((2, D)), np.zeros(2, int), optimizer="adam")
    monkeypatch.setenv("NN_LANG", "en")
    with pytest.raises(ValueError, match=r"activation_stats: expected X of shape \(N, features\) with N > 0, got \(3,\)"):
        activation_stats(healthy(), np.zeros(3))
