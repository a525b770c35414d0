"""The doctor's findings, how they print, and its cheap checks for common student bugs.

utils.teaching.doctor.diagnose measures the network; this file holds what it returns
(Finding, Diagnosis), the rule that marks a finding as a consequence of an earlier one,
and four checks that need no training: a model left in train mode, validation images that
are also training images, training labels in sorted order, a loss that barely moves.
Each check returns a Finding or None.
"""
import hashlib
from dataclasses import dataclass

import numpy as np

OVERLAP = 0.01       # share of the checked images also in the training set: above it, a finding
SAME_NEIGHBOUR = 0.5  # share of neighbouring training labels that are equal (shuffled: about 1/K)
PLATEAU = 0.01       # the training loss fell by less than this share over the first epochs
PLATEAU_EPOCHS = 3

# Findings that follow from an earlier one: for each root cause, the findings it produces.
# Their own fixes would treat a symptom (lowering lr for raw pixels; LeakyReLU for zero
# weights, which does not break the symmetry), so they are marked "probably caused by".
CONSEQUENCES = {
    "the loss is NaN or inf": ("",),  # NaN weights or outputs make every other number meaningless
    "inputs are raw pixel values": ("the learning rate is too high", "the loss is far above chance",
                                    "all predictions are the same class", "dead ReLU", "saturated",
                                    "the network cannot overfit"),
    "weights initialised to zero": ("dead ReLU", "all predictions are the same class", "saturated",
                                    "the network cannot overfit", "the learning rate is too low"),
}


@dataclass
class Finding:
    """One problem diagnose() found: what it measured, why that matters, and the fix."""
    problem: str
    measured: str
    why: str
    fix: str
    severity: int  # 3: training cannot work; 2: it learns badly or slowly; 1: worth a look
    caused_by: int = 0  # the number of the finding this one probably follows from; 0: none

    def __str__(self):
        head = self.problem + (f" (probably caused by #{self.caused_by})" if self.caused_by else "")
        return f"{head}\n   measured: {self.measured}\n   why: {self.why}\n   fix: {self.fix}"


class Diagnosis(list):
    """diagnose()'s findings, most severe first, with every measured signal in .signals.

    sample: what the signals were measured on (e.g. "a random 1,000 of the 6,000 images (seed 0)").
    """

    def __init__(self, findings, signals, sample=""):
        super().__init__(findings)
        self.signals, self.sample = signals, sample

    def __str__(self):
        head = (["nothing wrong found"] if not self else
                [f"{i}. {finding}" for i, finding in enumerate(self, 1)])
        signals = ", ".join(f"{k} {_fmt(v)}" for k, v in self.signals.items())
        where = (f"measured on {self.sample}: its loss and accuracy are the sample's, not the full set's"
                 if self.sample else "")
        return "\n".join(head + [f"signals: {signals}"] + ([where] if where else []))

    __repr__ = __str__


def _fmt(v):
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def mark_consequences(findings):
    """Mark the findings (in their printed order) that probably follow from an earlier root cause.

    A marked finding keeps what it measured; its fix says to fix the root first, since its own
    fix would treat a symptom. Returns findings, changed in place.
    """
    for i, root in enumerate(findings, 1):
        symptoms = CONSEQUENCES.get(root.problem)
        if symptoms is None or any(f.caused_by for f in findings[:i]):
            continue
        for f in findings[i:]:
            if not f.caused_by and f.problem not in CONSEQUENCES and any(f.problem.startswith(s) for s in symptoms):
                f.caused_by = i
                f.why += f"; here most likely a consequence of #{i} ({root.problem}), not a separate cause"
                f.fix = f"fix #{i} first and run the doctor again; only if this remains: {f.fix}"
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
    return Finding("the model is evaluated in train mode: dropout is on", f"two calls of the evaluation "
                   f"function on the same {len(X)} images disagree on {changed:.1%} of the predictions",
                   "in train mode dropout zeroes a random share of the units at every call, so accuracy "
                   "measured this way is lower than the network's and changes from run to run",
                   "call model.eval() before evaluating or predicting by hand (model.train() before training "
                   "again); utils.core.train.evaluate and model.predict switch to eval mode themselves", 2)


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
        "the checked images overlap the training set", f"{shared:,} of the {len(X):,} images ({share:.0%}) are "
        f"identical to training images", "a network scores well on images it was trained on, so validation "
        "accuracy on them measures memory, not how it does on new images; choices made with it (epochs, "
        "hyperparameters) favour overfitting", "split the validation images off before training and train "
        "on the rest only (utils.core.preprocess.stratified_split); pass diagnose the validation set", 2)


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
        "the training labels are in sorted order", f"{same:.0%} of neighbouring training labels are equal "
        f"(shuffled: about {expected:.0%}); the longest run of one class is {int(np.diff(starts).max()):,} images",
        "a loop that takes the batches in stored order trains on one class at a time: each stretch pulls the "
        "network towards that class, the loss jumps at every change and the last class seen wins "
        "(utils.core.train.train draws a fresh random order every epoch, so it is not affected)",
        "shuffle every epoch: idx = rng.permutation(N), then batches of X[idx], y[idx] (as train_epoch does)", 2)


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
        "the training loss is on a plateau", f"training loss {', '.join(f'{v:.3g}' for v in loss)} over the "
        f"first {PLATEAU_EPOCHS} epochs ({-drop:+.1%}), still above ln(K)/2 = {0.5 * np.log(num_classes):.3g}",
        "the weights barely move: a learning rate far too low, or gradients that vanish (saturated or dead "
        "units, see the other findings)", "raise the learning rate by 10x, or pick it with a learning-rate "
        "range test (utils.teaching.sanity.lr_range_test)", 2)
