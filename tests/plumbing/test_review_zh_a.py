"""Fixes of the Chinese review of notebooks 00-03 (part A): in Chinese the reader sees the words the
widgets and the markdown use; in English every printout stays as it was."""
import pytest

from utils.figures.panel import setting_list
from utils.plumbing.config import describe, load_config
from utils.search.results import header
from utils.teaching.findings import Diagnosis, Finding

SETTINGS = {"hidden_sizes": [512, 256], "activation": "relu", "nesterov": False, "lr": 0.03, "lr_schedule": "cosine"}


def diagnosis():
    first = Finding("inputs are raw pixel values", "mean 120", "big inputs", "standardise", 3)
    second = Finding("the learning rate is too high", "ratio 1", "steps too big", "lower lr", 2, caused_by=1)
    return Diagnosis([first, second], {"train_mode": True, "overlap_with_train": None, "loss": 2.5})


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_printouts_in_each_language(monkeypatch, lang):
    monkeypatch.setenv("NN_LANG", lang)
    text = describe(load_config("mlp_fashion"))
    report = str(diagnosis())
    if lang == "en":
        assert "lr 0.03 with cosine decay" in text
        assert "(probably caused by #1)" in report and "train_mode True, overlap_with_train None, loss 2.5" in report
        assert setting_list(SETTINGS) == ("hidden_sizes=[512, 256], activation=relu, nesterov=False, lr=0.03, "
                                          "lr_schedule=cosine")
        assert [header(c) for c in ("val_acc", "best_epoch", "lr")] == ["val_acc", "best_epoch", "lr"]
    else:
        assert "学习率 0.03（余弦调度）" in text and "cosine" not in text
        assert "（很可能由第 1 条引起）" in report and "#1" not in report
        assert "训练模式 是" in report and "未检查" in report and "None" not in report and "True" not in report
        assert setting_list(SETTINGS) == "隐藏层大小 512-256，激活函数 relu，Nesterov 动量（SGD） 否，学习率 0.03，学习率调度 余弦调度"
        assert [header(c) for c in ("val_acc", "best_epoch", "lr")] == ["验证准确率", "最佳轮次", "lr"]
