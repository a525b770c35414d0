"""The Chinese edition of the training and loop checks, of gradcheck's report lines and of the sanity checks:
with NN_LANG=zh each planted bug (those of test_checks.py and test_checks_parts.py) is told in Chinese and
still names its identifiers and formulas; without it the English is the one the notebooks print."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tests.teaching.test_checks import BUGS as TRAINING_BUGS  # noqa: E402
from tests.teaching.test_checks import REFERENCES  # noqa: E402
from tests.teaching.test_checks_parts import BUGS as PART_BUGS  # noqa: E402
from tests.teaching.test_checks_parts import RIGHT, VAL, Y_VAL, fit, load_params, trained  # noqa: E402
from utils.plumbing.fonts import label  # noqa: E402
from utils.teaching import checks_loop, checks_training  # noqa: E402
from utils.teaching.checks_loop import check_best_weights, check_trained  # noqa: E402
from utils.teaching.gradcheck import GRADCHECK_TOL, below_tol, every_below_tol, gradcheck_line  # noqa: E402
from utils.teaching.sanity import InitialLoss, plot_lr_range  # noqa: E402

CJK = re.compile(r"[\u4e00-\u9fff]")

# Planted bug -> what must survive the translation: the identifiers, code and numbers of its message.
# (Bugs whose message is made by checks_common.compare alone, e.g. "N = 6 times too large", are not here:
# that wording is checks_common's.)
WORDS = {
    "loss-no-max-shift": ["softmax_cross_entropy", "1000", "exp(1000) = inf", "NaN", "inf"],
    "loss-grad-no-onehot": ["dlogits = (p - onehot(y)) / N"],
    "l2-on-biases": ["l2_regularization", "'.W'"],
    "l2-bias-gradient": ["l2_regularization", "grads['0.b']", "'.W'"],
    "l2-grad-2-lambda": ["grads['0.W']", "l2_lambda / 2 * sum(W**2)", "l2_lambda * W"],
    "l2-grad-half-lambda": ["grads['0.W']", "l2_lambda / 2 * W"],
    "l2-penalty-no-half": ["l2_regularization", "1/2", "l2_lambda / 2 * sum(W**2)"],
    "momentum-sign": ["sgd_momentum", "1", "v = momentum * v - lr * dw"],
    "momentum-order": ["sgd_momentum", "w = w + "],
    "momentum-missing": ["sgd_momentum", "2", "v = momentum * v - lr * dw"],
    "step-every-iteration": ["step_decay", "t = 0..15", "decay_steps = 5"],
    "step-smooth": ["step_decay", "t // decay_steps"],
    "exponential-staircase": ["exponential_decay", "t / decay_steps", "t // decay_steps"],
    "search-zip": ["grid_search", "zip", "itertools.product(*space.values())", "2", "12"],
    "search-worst-first": ["grid_search", "reverse=True", "val_acc"],
    "adam-no-bias-correction": ["Adam.step", "params['0.W']", "1 - beta1**t", "m_hat"],
    "adam-t-per-parameter": ["Adam.step", "t += 1"],
    "adam-t-after-use": ["Adam.step", "1 - beta1**0", "t += 1", "m_hat", "v_hat"],
    "adam-abs-not-square": ["|g|", "g**2"],
    "adam-no-sqrt": ["sqrt(v_hat) + eps"],
    "adam-rebinds": ["Adam.step", "params['0.W']", "-="],
    "cosine-double-period": ["cosine_decay", "2 * total_steps", "t = 0..25"],
    "cosine-no-clamp": ["total_steps = 20", "min_lr", "min(t, total_steps)"],
    "cosine-min-lr-ignored": ["min_lr", "lr"],
    "cosine-no-half-shift": ["min_lr", "(1 + cos(pi * t / total_steps)) / 2"],
    "loop-no-shuffle": ["train_epoch", "rng.permutation(len(X))", "X[order]", "y[order]"],
    "loop-shuffled-apart": ["train_epoch", "rng.shuffle"],
    "loop-last-batch-dropped": ["train_epoch", "50", "16", "3", "4", "range(0, len(X), batch_size)"],
    "loop-lr-after-step": ["optimizer.lr = schedule(it)", "optimizer.step"],
    "loop-l2-loss-only": ["l2_lambda * W", "l2_fn", "net.grads"],
    "loop-l2-grad-only": ["l2_fn"],
    "loop-eval-mode": ["net.train()"],
    "loop-accumulated": ["+="],
    "loop-clock-restarts": ["schedule(it)"],
    "loop-returns-steps": ["train_epoch", "it = 4", "7"],
    "fit-references": ["best['params']", "5", "v.copy()"],
    "fit-last-epoch": ["best['epoch']", "5", "val_acc"],
    "fit-by-val-loss": ["best['epoch']", "3"],
    "fit-not-reloaded": ["load_params(net, best['params'])"],
    "fit-load-rebinds": ["load_params", "net.params[name]", "net.params[name][...] = params[name]"],
    "evaluate-train-mode": ["evaluate", "net.eval()"],
    "evaluate-mean-of-batch-means": ["evaluate", "sum(loss_b * len(batch)) / N"],
    "evaluate-count": ["evaluate", "N"],
    "evaluate-swapped": ["(accuracy, loss)", "(loss, accuracy)"],
    "confusion-transposed": ["confusion_matrix", "np.add.at(M, (y_true, y_pred), 1)"],
    "confusion-sized-by-data": ["confusion_matrix", "(3, 3)", "(4, 4)", "num_classes"],
    "confusion-normalised": ["confusion_matrix"],
    "trained-not-reloaded": ["0.0000", "1.0000"],
    "trained-below-bar": ["1.0000", "1.1"],
}
BUGS = {**TRAINING_BUGS, **PART_BUGS}


def message_of(name):
    check, buggy, _ = BUGS[name]
    with pytest.raises(AssertionError) as info:
        check(buggy)
    plt.close("all")
    return str(info.value)


@pytest.mark.parametrize("name", WORDS)
def test_a_planted_bug_is_told_in_chinese_and_keeps_its_identifiers(name, monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    message = message_of(name)
    assert CJK.search(message), message
    for word in WORDS[name]:
        assert word in message, f"{name}: {word!r} not in {message!r}"
    monkeypatch.setenv("NN_LANG", "en")
    english = message_of(name)
    assert not CJK.search(english) and english != message
    for word in BUGS[name][2]:  # the English words test_checks*.py look for
        assert word in english, english


def test_each_bug_keeps_its_own_chinese_message(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    messages = {}
    for name in WORDS:
        messages.setdefault(message_of(name), []).append(name)
    assert all(len(names) == 1 for names in messages.values()), [n for n in messages.values() if len(n) > 1]


def test_the_loop_causes_follow_the_language_after_the_import(monkeypatch):
    english = checks_loop.loop_bugs()
    monkeypatch.setenv("NN_LANG", "zh")
    chinese = checks_loop.loop_bugs()
    assert tuple(chinese) == tuple(english) and len(english) == 9
    assert all(CJK.search(text) and not CJK.search(english[bug]) for bug, text in chinese.items())


MINE = [(c, a) for c, a in REFERENCES + RIGHT if c.__module__ in (checks_training.__name__, checks_loop.__name__)]


@pytest.mark.parametrize("check, answer", MINE, ids=[f"{c.__name__}-{a.__name__}" for c, a in MINE])
def test_a_right_answer_is_told_in_chinese(check, answer, monkeypatch, capsys):
    monkeypatch.setenv("NN_LANG", "zh")
    check(answer)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and CJK.search(out), out


def test_the_right_schedule_fit_and_run_name_their_numbers_in_chinese(monkeypatch, capsys):
    monkeypatch.setenv("NN_LANG", "zh")
    check_best_weights(fit, load_params)
    check_trained(trained(), VAL, Y_VAL, 0.9)
    checks_training.check_cosine(dict(RIGHT)[checks_training.check_cosine])
    lines = capsys.readouterr().out.splitlines()
    assert "5" in lines[0] and "2" in lines[0] and CJK.search(lines[0])
    assert "1.0000 >= 0.9" in lines[1] and CJK.search(lines[1])
    assert "0.1" in lines[2] and "0.01" in lines[2] and "20" in lines[2] and CJK.search(lines[2])


def test_the_end_to_end_check_skips_in_chinese_while_a_part_is_missing(monkeypatch, capsys):
    def unwritten():
        raise NotImplementedError("fit")

    monkeypatch.setenv("NN_LANG", "zh")
    check_trained(unwritten, VAL, Y_VAL, 0.9)
    out = capsys.readouterr().out
    assert "fit" in out and "端到端" in out, out


# ---------------------------------------------------------------- gradcheck's lines

ERRORS = {"x": 2e-10, "W": 3e-10, "b": 1e-11}


def test_gradcheck_lines_in_english_are_the_ones_notebooks_03_and_05_print(monkeypatch):
    monkeypatch.delenv("NN_LANG", raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    worst = max(ERRORS.values())
    assert gradcheck_line("Linear", ERRORS) == (
        f"{'Linear':20s} gradients checked: {', '.join(ERRORS)}; largest relative error below {GRADCHECK_TOL:g}: "
        f"{worst < GRADCHECK_TOL}")
    assert gradcheck_line("Linear", ERRORS) == ("Linear               gradients checked: x, W, b; largest relative "
                                                "error below 1e-06: True")
    assert below_tol({"x": 0.1}) == "largest relative error below 1e-06: False"
    assert every_below_tol(True) == "every relative error below 1e-06: True"


def test_gradcheck_lines_in_chinese_keep_the_names_and_the_tolerance(monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    line = gradcheck_line("Linear", ERRORS)
    assert line.startswith("Linear ") and "x, W, b" in line and "1e-06" in line and CJK.search(line), line
    assert "是" in below_tol(ERRORS) and "否" in below_tol({"x": 0.1}) and "1e-06" in below_tol(0.5)
    assert CJK.search(every_below_tol(False)) and "1e-06" in every_below_tol(False)


# ---------------------------------------------------------------- sanity checks

def test_the_initial_loss_message_in_english_is_the_one_notebook_03_prints(monkeypatch):
    monkeypatch.setenv("NN_LANG", "en")
    assert str(InitialLoss(2.2862, 2.302585, 0.1512)) == (
        "loss at initialisation 2.286; ln(K) = 2.303 for K classes, the loss of guessing uniformly; the logits' "
        "std is 0.15 (nearly equal logits: no class preferred yet, as it should be)")
    assert str(InitialLoss(3.1331, 2.302585, 1.5213)).endswith(
        "the logits' std is 1.52 (logits that large prefer some classes before any training: a He-initialised "
        "output layer makes them so; a smaller output layer gives ~ln(K))")


@pytest.mark.parametrize("loss, std", [(2.2862, 0.1512), (3.1331, 1.5213)], ids=["near-ln-K", "large-logits"])
def test_the_initial_loss_message_in_chinese_keeps_its_numbers(loss, std, monkeypatch):
    monkeypatch.setenv("NN_LANG", "zh")
    text = str(InitialLoss(loss, 2.302585, std))
    assert CJK.search(text) and f"{loss:.3f}" in text and "2.303" in text and f"{std:.2f}" in text, text
    assert "ln(K)" in text and "logits" in text
    assert ("He" in text) == (loss > 3)


@pytest.mark.parametrize("lang, title", [("en", "Learning-rate range test"), ("zh", None)])
def test_the_lr_range_figure_speaks_the_readers_language(lang, title, monkeypatch):
    monkeypatch.setenv("NN_LANG", lang)
    lr = np.geomspace(1e-5, 10, 30)
    loss = np.r_[np.linspace(2.3, 0.5, 20), np.geomspace(0.6, 20, 10)]
    table = pd.DataFrame({"iteration": np.arange(30), "lr": lr, "loss": loss, "smoothed": loss})
    fig = plot_lr_range(table)
    try:
        ax = fig.axes[0]
        assert ax.get_title() == (title or label("Learning-rate range test"))
        assert ax.get_xlabel() == label("learning rate (growing every iteration)")
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend[0] == label("batch loss") and "lr " in legend[2], legend
        if lang == "en":
            assert legend[:2] == ["batch loss", "smoothed"] and legend[2].startswith("lowest smoothed loss: lr ")
    finally:
        plt.close(fig)
