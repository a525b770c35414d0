"""The doctor's findings, how they print, and its cheap checks for common student bugs.

utils.teaching.doctor.diagnose measures the network; this file holds what it returns
(Finding, Diagnosis), the rule that marks a finding as a consequence of an earlier one,
and four checks that need no training: a model left in train mode, validation images that
are also training images, training labels in sorted order, a loss that barely moves.
Each check returns a Finding or None.

Language: a finding's texts are Text, a str holding the English (which the doctor ranks and
relates findings by, and which tests and code compare), that also remembers its template and
fields; it is put into the reader's language only when shown (Finding and Diagnosis print it
so, see utils.plumbing.language). So the diagnosis is the same in English and Chinese; only
its printout differs. In this file and in doctor.py, _("template {x}", x=...) makes such a Text
(gettext's deferred N_(), named _ so that `python -m utils.plumbing.translate` finds its texts).
"""
import hashlib
import re
from dataclasses import dataclass

import numpy as np

from utils.plumbing import language

OVERLAP = 0.01       # share of the checked images also in the training set: above it, a finding
SAME_NEIGHBOUR = 0.5  # share of neighbouring training labels that are equal (shuffled: about 1/K)
PLATEAU = 0.01       # the training loss fell by less than this share over the first epochs
PLATEAU_EPOCHS = 3


class Text(str):
    """English text (the str itself) that can be shown in the reader's language later.

    template: the English with {fields}, looked up in the catalogs when shown; fields: their
    values, formatted by the template's specs (a Text field is shown in the reader's language too).
    """

    def __new__(cls, template, fields=None):
        fields = dict(fields or {})
        self = super().__new__(cls, template.format(**fields) if fields else template)
        self.template, self.fields = template, fields
        return self

    def shown(self):
        """The text in the reader's language (NN_LANG): the translated template, its fields filled in."""
        template = language._(self.template)
        if not self.fields:
            return template
        return template.format(**{k: shown(v) for k, v in self.fields.items()})


def _(template, **fields):
    """A Text: English now, in the reader's language when shown (template: a literal, for the extraction)."""
    return Text(template, fields)


def shown(text):
    """text in the reader's language if it is a Text; anything else as it is (numbers keep their format)."""
    return text.shown() if isinstance(text, Text) else text

# Findings that follow from an earlier one: for each root cause, the findings it produces.
# Their own fixes would treat a symptom (lowering lr for raw pixels; LeakyReLU for zero
# weights, which does not break the symmetry), so they are marked "probably caused by".
# Matched against the English of the findings' problems, whatever the reader's language.
CONSEQUENCES = {
    "the loss is NaN or inf": ("",),  # NaN weights or outputs make every other number meaningless
    "inputs are raw pixel values": ("the learning rate is too high", "the loss is far above chance",
                                    "all predictions are the same class", "dead ReLU", "saturated",
                                    "the network cannot overfit"),
    "weights initialised to zero": ("dead ReLU", "all predictions are the same class", "saturated",
                                    "the network cannot overfit", "the learning rate is too low"),
}

# The names of the measured signals, as the printout shows them (the keys of .signals stay as they are).
SIGNAL_NAMES = {
    "input_mean": _("input_mean"), "input_std": _("input_std"), "input_min": _("input_min"),
    "input_max": _("input_max"), "zero_weight_layers": _("zero_weight_layers"), "loss": _("loss"),
    "chance_loss": _("chance_loss"), "top_class_share": _("top_class_share"), "accuracy": _("accuracy"),
    "update_ratio": _("update_ratio"), "update_ratio_max": _("update_ratio_max"),
    "overfit_steps": _("overfit_steps"), "train_mode": _("train_mode"),
    "overlap_with_train": _("overlap_with_train"), "same_label_neighbours": _("same_label_neighbours"),
    "epochs": _("epochs"), "best_val_acc": _("best_val_acc"),
}


def signal_name(key):
    """The printed name of the signal key: the key itself in English, its meaning in Chinese."""
    if key in SIGNAL_NAMES:
        return SIGNAL_NAMES[key]
    layered = re.fullmatch(r"(dead|saturated)_(\d+)", key)
    if layered:
        i = int(layered.group(2))
        return _("dead_{i}", i=i) if layered.group(1) == "dead" else _("saturated_{i}", i=i)
    return key


@dataclass
class Finding:
    """One problem diagnose() found: what it measured, why that matters, and the fix.

    The texts are English (Text when the doctor made them); print the finding to read it in the
    reader's language.
    """
    problem: str
    measured: str
    why: str
    fix: str
    severity: int  # 3: training cannot work; 2: it learns badly or slowly; 1: worth a look
    caused_by: int = 0  # the number of the finding this one probably follows from; 0: none

    def __str__(self):
        head = _("{problem} (probably caused by #{n})", problem=self.problem, n=self.caused_by) if self.caused_by \
            else self.problem
        return shown(_("{head}\n   measured: {measured}\n   why: {why}\n   fix: {fix}",
                       head=head, measured=self.measured, why=self.why, fix=self.fix))


class Diagnosis(list):
    """diagnose()'s findings, most severe first, with every measured signal in .signals.

    sample: what the signals were measured on (e.g. "a random 1,000 of the 6,000 images (seed 0)").
    """

    def __init__(self, findings, signals, sample=""):
        super().__init__(findings)
        self.signals, self.sample = signals, sample

    def __str__(self):
        head = ([shown(_("nothing wrong found"))] if not self else
                [f"{i}. {finding}" for i, finding in enumerate(self, 1)])
        comma = "，" if language.language() == "zh" else ", "
        signals = comma.join(f"{shown(signal_name(k))} {_fmt(v)}" for k, v in self.signals.items())
        lines = head + [shown(_("signals: {signals}", signals=signals))]
        if self.sample:
            lines.append(shown(_("measured on {sample}: its loss and accuracy are the sample's, not the full set's",
                                 sample=self.sample)))
        return "\n".join(lines)

    __repr__ = __str__


def _fmt(v):
    """A signal's value as printed: True/False/None shown in words in Chinese (是/否/未检查), as str() in English."""
    if v is None or isinstance(v, bool):
        return shown({True: _("True"), False: _("False"), None: _("None")}[v])
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def mark_consequences(findings):
    """Mark the findings (in their printed order) that probably follow from an earlier root cause.

    A marked finding keeps what it measured; its fix says to fix the root first, since its own
    fix would treat a symptom. Returns findings, changed in place. Works on the English texts.
    """
    for i, root in enumerate(findings, 1):
        symptoms = CONSEQUENCES.get(root.problem)
        if symptoms is None or any(f.caused_by for f in findings[:i]):
            continue
        for f in findings[i:]:
            if not f.caused_by and f.problem not in CONSEQUENCES and any(f.problem.startswith(s) for s in symptoms):
                f.caused_by = i
                f.why = _("{why}; here most likely a consequence of #{i} ({root}), not a separate cause",
                          why=f.why, i=i, root=root.problem)
                f.fix = _("fix #{i} first and run the doctor again; only if this remains: {fix}", i=i, fix=f.fix)
    return findings


# ---------------------------------------------------------------- cheap checks for common student bugs

def _labels(out):
    out = np.asarray(out)
    return out.argmax(axis=1) if out.ndim == 2 else out


def check_train_mode(predict, X):
    """Evaluation in train mode: predict (the caller's evaluation code, X -> logits or labels)
    gives different predictions for the same inputs X on two calls (dropout is on)."""
    first, second = _labels(predict(X)), _labels(predict(X))
    changed = float(np.mean(first != second))
    if changed == 0:
        return None
    return Finding(_("the model is evaluated in train mode: dropout is on"),
                   _("two calls of the evaluation function on the same {n} images disagree on {changed:.1%} of the "
                     "predictions", n=len(X), changed=changed),
                   _("in train mode dropout zeroes a random share of the units at every call, so accuracy "
                     "measured this way is lower than the network's and changes from run to run"),
                   _("call model.eval() before evaluating or predicting by hand (model.train() before training "
                     "again); utils.core.train.evaluate and model.predict switch to eval mode themselves"), 2)


def _row_digests(X):
    """One 16-byte digest per row of X (N, ...): equal rows, equal digests."""
    X = np.ascontiguousarray(X)
    return {hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in X.reshape(len(X), -1)}


def check_overlap(X_train, X):
    """Images of X (e.g. the validation set) that are also in X_train, found by hashing identical rows."""
    if X_train is None:
        return None, None
    train = _row_digests(np.asarray(X_train, dtype=np.asarray(X).dtype))
    X = np.ascontiguousarray(X)
    shared = sum(hashlib.blake2b(row.tobytes(), digest_size=16).digest() in train for row in X.reshape(len(X), -1))
    share = shared / len(X)
    if share <= OVERLAP:
        return share, None
    return share, Finding(
        _("the checked images overlap the training set"),
        _("{shared:,} of the {n:,} images ({share:.0%}) are identical to training images",
          shared=shared, n=len(X), share=share),
        _("a network scores well on images it was trained on, so validation accuracy on them measures memory, "
          "not how it does on new images; choices made with it (epochs, hyperparameters) favour overfitting"),
        _("split the validation images off before training and train on the rest only "
          "(utils.core.preprocess.stratified_split); pass diagnose the validation set"), 2)


def check_label_order(y_train):
    """Training labels stored sorted or in long runs of one class (judged by neighbouring labels)."""
    if y_train is None or len(y_train) < 2:
        return None, None
    y = np.asarray(y_train)
    same = float(np.mean(y[1:] == y[:-1]))
    counts = np.bincount(y - y.min())
    expected = float(np.sum((counts / len(y)) ** 2))  # neighbours equal by chance in a shuffled order
    if same <= max(SAME_NEIGHBOUR, 2 * expected):
        return same, None
    starts = np.flatnonzero(np.r_[True, y[1:] != y[:-1], True])
    return same, Finding(
        _("the training labels are in sorted order"),
        _("{same:.0%} of neighbouring training labels are equal (shuffled: about {expected:.0%}); the longest "
          "run of one class is {run:,} images", same=same, expected=expected, run=int(np.diff(starts).max())),
        _("a loop that takes the batches in stored order trains on one class at a time: each stretch pulls the "
          "network towards that class, the loss jumps at every change and the last class seen wins "
          "(utils.core.train.train draws a fresh random order every epoch, so it is not affected)"),
        _("shuffle every epoch: idx = rng.permutation(N), then batches of X[idx], y[idx] (as train_epoch does)"), 2)


def check_plateau(history, num_classes):
    """A training loss that barely moves over the first epochs, while still far from fitted."""
    if history is None or len(history) < PLATEAU_EPOCHS or "train_loss" not in history:
        return None
    loss = np.asarray(history["train_loss"], dtype=float)[:PLATEAU_EPOCHS]
    if not np.isfinite(loss).all() or loss[0] <= 0:
        return None
    drop = (loss[0] - loss[-1]) / loss[0]
    if drop >= PLATEAU or loss[-1] < 0.5 * np.log(num_classes):
        return None
    return Finding(
        _("the training loss is on a plateau"),
        _("training loss {losses} over the first {epochs} epochs ({change:+.1%}), still above ln(K)/2 = {half:.3g}",
          losses=", ".join(f"{v:.3g}" for v in loss), epochs=PLATEAU_EPOCHS, change=-drop,
          half=0.5 * np.log(num_classes)),
        _("the weights barely move: a learning rate far too low, or gradients that vanish (saturated or dead "
          "units, see the other findings)"),
        _("raise the learning rate by 10x, or pick it with a learning-rate range test "
          "(utils.teaching.sanity.lr_range_test)"), 2)
