"""Small exercise notebooks for the grader's tests: a handed-out notebook of three parts, and students' copies.

Three parts whose checks take milliseconds (ReLU, L2, SGD with momentum), so that a kernel start
is what a notebook costs. Each student notebook is the handed-out one with some exercise cells
replaced (by the answer, a planted bug, or hostile code) and extra cells inserted where asked.
"""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

IMPORTS = """import numpy as np

from module import Layer
from utils.teaching.checks_layers import check_layer
from utils.teaching.checks_training import check_l2, check_update"""

BLANKS = {
    "relu": 'class ReLU(Layer):\n    def forward(self, x):\n        raise NotImplementedError("ReLU.forward")\n\n'
            '    def backward(self, dout):\n        raise NotImplementedError("ReLU.backward")',
    "l2": 'def l2_regularization(params, l2_lambda):\n    raise NotImplementedError("l2_regularization")',
    "momentum": 'def sgd_momentum(w, dw, v, lr, momentum):\n    raise NotImplementedError("sgd_momentum")',
}
CHECKS = {"relu": "check_layer(ReLU)", "l2": "check_l2(l2_regularization)", "momentum": "check_update(sgd_momentum)"}

ANSWERS = {
    "relu": "class ReLU(Layer):\n    def forward(self, x):\n        self.x = x\n        return np.maximum(x, 0)\n\n"
            "    def backward(self, dout):\n        return dout * (self.x > 0)",
    "l2": "def l2_regularization(params, l2_lambda):\n"
          "    weights = {k: W for k, W in params.items() if k.endswith('.W')}\n"
          "    return l2_lambda / 2 * sum(np.sum(W ** 2) for W in weights.values()), "
          "{k: l2_lambda * W for k, W in weights.items()}",
    "momentum": "def sgd_momentum(w, dw, v, lr, momentum):\n    v = momentum * v - lr * dw\n    return w + v, v",
}
# One planted bug per part, and the words its check's message names it with.
BUGS = {
    "relu": ("class ReLU(Layer):\n    def forward(self, x):\n        self.x = x\n        return np.maximum(x, 0)\n\n"
             "    def backward(self, dout):\n        return dout", "ReLU mask is missing"),
    "l2": ("def l2_regularization(params, l2_lambda):\n"
           "    return l2_lambda / 2 * sum(np.sum(W ** 2) for W in params.values()), "
           "{k: l2_lambda * W for k, W in params.items()}", "L2 applied to biases"),
    "momentum": ("def sgd_momentum(w, dw, v, lr, momentum):\n    v = -lr * dw\n    return w + v, v",
                 "momentum term is missing"),
}


def handed_out():
    """The reference: imports, then per part a markdown cell, the blank (metadata "exercise") and its check."""
    cells = [new_code_cell(IMPORTS)]
    for part, blank in BLANKS.items():
        cells += [new_markdown_cell(f"## {part}"), new_code_cell(blank, metadata={"exercise": part}),
                  new_code_cell(CHECKS[part])]
    return new_notebook(cells=cells)


def student(answers=None, after=None, before=None):
    """The handed-out notebook with answers {part: source} in the exercise cells, and extra code cells
    inserted after (or before) a part's exercise cell: {part: [source, ...]}."""
    answers, after, before = answers or {}, after or {}, before or {}
    cells = []
    for cell in handed_out().cells:
        part = cell.metadata.get("exercise")
        cells += [new_code_cell(source) for source in before.get(part, [])]
        if part in answers:
            cell.source = answers[part]
        cells += [cell, *(new_code_cell(source) for source in after.get(part, []))]
    return new_notebook(cells=cells)


def write(nb, path):
    nbformat.write(nb, str(path))
    return path
