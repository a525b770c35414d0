"""The checks of layers, im2col, dropout and figures, what they share (checks_common), the grader's verdicts
and the exercise notebook's errors, in Chinese with NN_LANG=zh: the planted bugs of test_checks.py and
test_checks_parts.py are named in Chinese, with the identifiers, formulas and shapes of the English message;
in English the messages have no Chinese in them (test_checks*.py assert their English words)."""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import module  # noqa: E402
from tests.teaching import test_checks as layer_tests  # noqa: E402
from tests.teaching import test_checks_parts as part_tests  # noqa: E402
from utils.plumbing import language, po  # noqa: E402
from utils.plumbing.language import _  # noqa: E402
from utils.teaching import checks_common, exercise_notebook, verdict  # noqa: E402
from utils.teaching.checks_layers import check_layer  # noqa: E402

CJK = re.compile(r"[\u4e00-\u9fff]")

# planted bug (its name in test_checks.py or test_checks_parts.py) -> what the Chinese message still names
KEEPS = {
    "linear-dW-divided-by-N": ["Linear.backward", "self.grads['W']", "N = 4", "dW = x.T @ dout"],
    "linear-dW-transposed": ["self.grads['W']", "(3, 5)", "(5, 3)", "dW = x.T @ dout"],
    "linear-db-wrong-axis": ["self.grads['b']", "axis 0", "db = dout.sum(axis=0)"],
    "linear-dx-sign": ["Linear.backward", "dx", "-1", "dx = dout @ W.T"],
    "linear-no-bias": ["Linear.forward", "out = x @ W + b"],
    "linear-updates-weights": ["Linear.backward", "self.params['W']", "self.grads"],
    "relu-no-mask": ["ReLU.backward", "<= 0", "dx = dout * (x > 0)"],
    "sigmoid-at-input": ["Sigmoid.backward", "s = sigmoid(x)", "dx = dout * s * (1 - s)"],
    "tanh-no-square": ["Tanh.backward", "dx = dout * (1 - t**2)"],
    "maxpool-ties-copied": ["MaxPool2D.backward", "dout"],
    "maxpool-no-mask": ["MaxPool2D.backward"],
    "conv-flipped-kernel": ["Conv2D.forward", "W"],
    "conv-db-wrong-axes": ["Conv2D.backward", "self.grads['b']", "axis=(0, 2, 3)", "(F, N*Ho*Wo)"],
    "im2col-no-padding": ["im2col(x, kernel_size=3, stride=1, padding=1)", "np.pad", "`padding`", "(27, 50)"],
    "im2col-channel-last": ["W.reshape(F, -1)", "(C*k*k, N*Ho*Wo)"],
    "im2col-rows-per-position": ["N * Ho * Wo", "cols (C * k * k, N * Ho * Wo)", "out = W_flat @ cols"],
    "im2col-columns-position-first": ["module.Conv2D", "(F, N, Ho, Wo)"],
    "linear-grads-rebound": ["Linear.backward", "self.grads['W'] = ...", "self.grads['W'][...] = ...",
                             "Network.grads", "model.grads"],
    "linear-grads-accumulate": ["self.grads['W']", "+=", "self.grads['W'][...] =", "dW = x.T @ dout"],
    "linear-dx-untransposed": ["Linear.backward", "ValueError", "`", "dx = dout @ W.T",
                               "dout (4, 3) @ W.T (3, 5) -> (4, 5)"],
    "linear-dW-untransposed": ["Linear.backward", "ValueError", "x.T (5, 4) @ dout (4, 3) -> (5, 3)"],
    "relu-dout-in-place": ["ReLU.backward", "dout[x <= 0] = 0", "dx = dout * (x > 0)"],
    "relu-x-in-place": ["ReLU.forward", "x[x < 0] = 0", "np.maximum(x, 0)"],
    "dropout-not-scaled": ["Dropout.forward", "(1 - p)", "out = x * mask"],
    "dropout-active-in-eval": ["Dropout.forward", "self.training", "net.eval()", "False"],
    "dropout-p-kept": ["0.60", "1 - p", "keep = rng.random(x.shape) >= p"],
    "dropout-new-mask-in-backward": ["Dropout.backward", "dx = dout * self.mask"],
    "dropout-same-mask": ["Dropout.forward", "__init__", "self.rng"],
    "dropout-test-time-scaling": ["Dropout.forward", "(1 - p)", "out = x"],
    "curves-no-x": ["plot_curves", "0..4", "ax.plot(epochs, values)"],
    "curves-one-axes": ["plot_curves", "0..1", "fig, (ax_loss, ax_acc) = plt.subplots(1, 2)"],
    "curves-no-labels": ["plot_curves", "train_loss", "val_loss", "ax.set_xlabel(...)"],
    "curves-no-legend": ["plot_curves", "2", "train_loss, val_loss", "label=", "ax.legend()"],
    "curves-no-val-loss": ["plot_curves", "[0.9, 0.65, 0.6, 0.58, 0.61]", "row['val_loss']"],
    "curves-epoch-left-out": ["plot_curves", "4", "5", "range"],
    "curves-no-return": ["plot_curves", "NoneType", "`return fig`", "plt.subplots(...)"],
    "images-rows": ["plot_first_layer", "W.reshape(M, 28, 28)", "W[:, j]"],
    "images-transposed": ["plot_first_layer", "W[:, j].reshape(28, 28)"],
    "images-count": ["plot_first_layer", "12", "16", "count"],
    "images-no-return": ["plot_first_layer", "NoneType", "`return fig`"],
}
BUGS = {name: (layer_tests.BUGS.get(name) or part_tests.BUGS[name])[:2] for name in KEEPS}


def message_of(check, buggy):
    before = set(plt.get_fignums())
    try:
        with pytest.raises(AssertionError) as info:
            check(buggy)
    finally:
        for num in set(plt.get_fignums()) - before:
            plt.close(num)
    return str(info.value)


@pytest.mark.parametrize("name", KEEPS)
def test_every_planted_bug_is_named_in_chinese_with_its_identifiers_and_shapes(name, zh):
    message = message_of(*BUGS[name])
    assert CJK.search(message), message
    assert "Likely cause" not in message and " is wrong" not in message, message
    for kept in KEEPS[name]:
        assert kept in message, f"{name}: {kept!r} not in {message!r}"


def test_the_chinese_messages_still_differ_from_bug_to_bug(zh):
    messages = {message_of(*BUGS[name]) for name in KEEPS}
    assert len(messages) == len(KEEPS)


@pytest.mark.parametrize("name", ["linear-dW-divided-by-N", "linear-dx-untransposed", "dropout-p-kept",
                                  "curves-no-labels", "images-count"])
def test_in_english_the_same_bugs_are_named_as_before(name, en):
    message = message_of(*BUGS[name])
    assert not CJK.search(message), message
    assert "Likely cause: " in message


def test_a_right_layer_says_correct_in_chinese_with_its_prefix(zh, capsys):
    check_layer(module.Linear)
    check_layer(module.Conv2D(1, 4, 5, stride=2, padding=2))
    part_tests.check_dropout(part_tests.Dropout)
    part_tests.check_curves(part_tests.plot_curves)
    part_tests.check_weight_images(part_tests.plot_first_layer)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.startswith(_("correct:")) and line.startswith("正确：") for line in lines)
    assert "Linear" in lines[0] and "Conv2D" in lines[1] and "p = 0.4" in lines[2] and "1/(1-p)" in lines[2]
    assert "3" in lines[3] and "5" in lines[3] and "16" in lines[4] and "28 x 28" in lines[4]
    assert all(CJK.search(line.removeprefix("正确：")) for line in lines), lines


def test_an_empty_blank_gets_the_friendly_line_in_chinese(zh, capsys):
    class Linear(module.Linear):
        def backward(self, dout):
            raise NotImplementedError

    check_layer(Linear)
    with checks_common.skip_if_unwritten():
        raise NotImplementedError
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("还没有实现：") and "Linear.backward" in first
    assert second.startswith("还没有实现：") and "上面的函数" in second


def test_what_the_shared_helpers_say_is_chinese_and_keeps_the_values(zh):
    cases = [
        (lambda: checks_common.numbers("sgd_momentum", "w", shape=(4, 3)), ["sgd_momentum", "str", "'w'", "(4, 3)"]),
        (lambda: checks_common.numbers("step", None), ["step", "None", "`return`"]),
        (lambda: checks_common.build("Linear", layer_tests.NoParams, [5, 3]),
         ["Linear.__init__", "self.params", "NoneType", "super().__init__()"]),
        (lambda: checks_common.build("Linear", layer_tests.RaisingInit, [5, 3]),
         ["Linear.__init__", "TypeError", "unsupported operand", "[5, 3]", "raise TypeError("]),
        (lambda: checks_common.compare("out", np.ones(3) * np.nan, np.ones(3)), ["out", "NaN", "inf"]),
        (lambda: checks_common.compare("out", np.zeros(3), np.ones(3)), ["out"]),
        (lambda: checks_common.compare("out", np.ones(4), np.ones(3), formula="out = x"), ["(3,)", "(4,)", "out = x"]),
        (lambda: checks_common.compare("grads", 3 * np.arange(1, 4.0), np.arange(1, 4.0), plural=True), ["grads", "3"]),
        (lambda: checks_common.compare("out", np.array([1.0, 5.0, 2.0]), np.arange(1, 4.0)), ["out", "e-"]),
    ]
    for run, kept in cases:
        with pytest.raises(AssertionError) as info:
            run()
        message = str(info.value)
        assert CJK.search(message) and "Likely cause" not in message, message
        for word in kept:
            assert word in message, f"{word!r} not in {message!r}"


def test_the_grader_reads_the_verdicts_in_chinese_and_keeps_its_english_verdict_words(zh):
    checks = verdict.fresh_checks()
    right = verdict.run_check(checks["check_layer"], (module.ReLU,), {})
    assert right[0] == "correct" and "ReLU" in right[1] and CJK.search(right[1])
    assert not right[1].startswith("正确")
    wrong = verdict.run_check(checks["check_layer"], (BUGS["relu-no-mask"][1],), {})
    assert wrong[0] == "wrong" and "ReLU.backward" in wrong[1] and CJK.search(wrong[1])

    class Linear(module.Linear):
        def forward(self, x):
            raise NotImplementedError

    blank = verdict.run_check(checks["check_layer"], (Linear,), {})
    assert blank[0] == "not implemented" and "Linear.forward" in blank[1] and CJK.search(blank[1])
    printed = verdict.run_check(lambda: print(checks_common.unwritten("fit")), (), {})
    assert printed[0] == "not implemented" and printed[1].startswith("先写好 fit")
    results = verdict.judge({}, ["check_layer(Linear)", "check_nothing(1)"], checks)
    assert [r[0] for r in results] == ["not implemented", "error"]
    assert "Linear" in results[0][1] and "check_nothing" in results[1][1]
    assert all(CJK.search(r[1]) for r in results), results


def test_the_grader_reads_a_line_in_either_language_whatever_the_language_now(en):
    for line in ("正确：相对误差 1e-10（ReLU 的前向和反向传播，梯度检验）",
                 "correct: relative error 1e-10 (ReLU forward and backward, gradient check)"):
        assert verdict.run_check(lambda line=line: print(line), (), {})[0] == "correct"
        assert "1e-10" in verdict.run_check(lambda line=line: print(line), (), {})[1]
    assert verdict.run_check(lambda: print("还没有实现：先写好 fit，再重新运行这个单元格"), (), {}) == [
        "not implemented", "先写好 fit，再重新运行这个单元格"]


def test_the_exercise_notebook_errors_a_student_meets_are_chinese(zh, tmp_path):
    empty = tmp_path / "empty.ipynb"
    empty.write_text("")
    with pytest.raises(exercise_notebook.NotebookError, match="empty.ipynb") as info:
        exercise_notebook.read_notebook(empty)
    assert CJK.search(str(info.value)) and "Jupyter" in str(info.value)
    junk = tmp_path / "junk.ipynb"
    junk.write_text("{not json")
    with pytest.raises(exercise_notebook.NotebookError, match="junk.ipynb.*JSON") as info:
        exercise_notebook.read_notebook(junk)
    assert CJK.search(str(info.value))
    with pytest.raises(ValueError, match="cell 3") as info:
        exercise_notebook.check_calls("for i in range(2):\n    check_layer(Linear)\n", "cell 3")
    assert "check_layer" in str(info.value) and "for 循环" in str(info.value) and "第 1 行" in str(info.value)


def test_the_verdicts_of_an_executed_chinese_notebook_are_found(zh):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("check_layer(Linear)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=(
        "正确：相对误差 8e-11（Linear 的前向和反向传播，梯度检验）\n还没有实现：先写好 fit，再重新运行这个单元格\n其他\n"))]
    nb.cells.append(cell)
    assert [line for _, line in exercise_notebook.verdicts(nb)] == [
        "正确：相对误差 8e-11（Linear 的前向和反向传播，梯度检验）", "还没有实现：先写好 fit，再重新运行这个单元格"]


def test_every_chinese_verdict_line_starts_with_the_chinese_prefix_the_grader_reads():
    """A template that starts with "correct:" (or "not implemented yet:") starts with that prefix's translation."""
    entries = [e for path in language.catalog_paths("zh") for e in po.read(path)
               if e.msgid and e.msgstr and not e.fuzzy and not e.obsolete]
    table = {e.msgid: e.msgstr for e in entries}
    for prefix in ("correct:", "not implemented yet:"):
        assert CJK.search(table[prefix])
        starting = [e for e in entries if e.msgid.startswith(prefix) and e.msgid != prefix]
        assert starting, prefix
        bad = [e.msgid for e in starting if not e.msgstr.startswith(table[prefix])]
        assert not bad, f"these translations do not start with {table[prefix]!r}: {bad}"


def test_a_chinese_students_notebook_is_graded_with_chinese_messages_and_english_verdicts(tmp_path_factory):
    """One kernel: the student's notebook sets NN_LANG=zh in its first cell, as notebooks/zh/ does."""
    from tests.teaching.grader_notebooks import ANSWERS, BUGS, student
    from tests.teaching.test_grader_runs import grade_folder
    from utils.plumbing.translate import LANGUAGE_LINE

    def chinese(nb):
        nb.cells[0].source = LANGUAGE_LINE + nb.cells[0].source
        return nb

    notebooks = {"right": chinese(student(ANSWERS)),
                 "mixed": chinese(student({"relu": BUGS["relu"][0], "l2": ANSWERS["l2"]}))}
    _, _, rows, _, _ = grade_folder(tmp_path_factory, notebooks)
    right, wrong, blank = rows[("right", "relu")], rows[("mixed", "relu")], rows[("mixed", "momentum")]
    assert right[0] == "correct" and "ReLU" in right[1] and CJK.search(right[1]), right
    assert wrong[0] == "wrong" and "ReLU.backward" in wrong[1] and "dx = dout * (x > 0)" in wrong[1], wrong
    assert CJK.search(wrong[1]) and "Likely cause" not in wrong[1], wrong
    assert blank[0] == "not implemented" and "sgd_momentum" in blank[1] and CJK.search(blank[1]), blank
    assert rows[("mixed", "l2")][0] == "correct"
