"""The one training loop: mini-batch gradient descent with validation, best-weight saving and resume.

Every notebook, the search, the command line and the benchmark call ``train``; nothing else
updates weights. Its core is ``train_epoch`` (shuffle, then per batch: forward, loss,
backward, L2, step); ``train`` adds validation, the best weights, checkpoints and resume.

Its command line is utils/commands/train.py (python -m utils train).
"""
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from module import SoftmaxCrossEntropy
from utils.core.checkpoint import load_arrays, load_weights, save_arrays, save_model
from utils.core.models import evaluating, inference_batch_size
from utils.core.optim import OPTIMIZERS, l2_penalty, l2_regularize, lr_schedule
from utils.plumbing import config
from utils.plumbing.errors import CheckpointError, ConfigError
from utils.plumbing.language import _
from utils.plumbing.validate import check_finite


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or inf."""


# What train() uses for a hyperparameter its caller leaves out: the textbook defaults, plain
# mini-batch SGD at a constant learning rate, without L2 or early stopping. An experiment states
# every value it wants in its config file (configs/*.toml); no file is read here.
DEFAULTS = {"lr": 0.01, "num_epochs": 10, "batch_size": 64, "l2_lambda": 0.0, "optimizer": "sgd",
            "momentum": 0.0, "nesterov": False, "lr_schedule": "constant", "decay_factor": 0.5,
            "decay_steps": 1000, "patience": 0, "seed": 0}


def hyperparameters(**given):
    """The training hyperparameters: DEFAULTS updated by the given ones, each checked by the config schema.

    seed (the shuffling order) is accepted too; patience None means 0 (off). Raises ConfigError
    (a ValueError) naming the hyperparameter, its value and what is expected.
    """
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"train(): unknown hyperparameter {unknown[0]!r}{config.did_you_mean(unknown[0], DEFAULTS)}; "
                          f"known: {', '.join(DEFAULTS)}")
    hp = {**DEFAULTS, **given}
    if hp["patience"] is None:
        hp["patience"] = 0
    checked = {name: config.check_value("" if name == "seed" else "train", name, value, where="train()")
               for name, value in hp.items()}
    config.check_nesterov(checked, where="train()")
    return checked


def last_checkpoint(checkpoint_path):
    """Where train() keeps the latest epoch of the run whose best weights go to checkpoint_path."""
    checkpoint_path = Path(checkpoint_path)
    return checkpoint_path.with_name(checkpoint_path.stem + ".last.npz")


def check_resumable(checkpoint_path):
    """Refuse resume=True when there is nothing to resume from, before anything is trained or replaced.

    Starting afresh instead would replace the best checkpoint and its history without a word.
    """
    if checkpoint_path is None:
        raise ValueError("resume=True needs checkpoint_path, the best checkpoint of the run to continue")
    last = last_checkpoint(checkpoint_path)
    if not last.is_file():
        raise FileNotFoundError(f"nothing to resume from: no {last} (the file a run writes after every epoch); "
                                f"train without --resume (resume=False) to start a new run")
    return last


def make_optimizer(hp):
    """The optimiser named by hp["optimizer"], set up from the matching hyperparameters."""
    if hp["optimizer"] == "sgd":
        return OPTIMIZERS["sgd"](hp["lr"], momentum=hp["momentum"], nesterov=hp["nesterov"])
    return OPTIMIZERS["adam"](hp["lr"])


def evaluate(model, X, y, batch_size=None):
    """Mean cross-entropy loss and accuracy of the model on (X, y), in eval mode (the mode is restored).

    Computed in chunks of batch_size images (None: utils.core.models.inference_batch_size).
    """
    check_finite(X, "evaluate")
    batch_size = batch_size or inference_batch_size(model, X.shape[1:], X.itemsize)
    loss_fn, total_loss, correct = SoftmaxCrossEntropy(), 0.0, 0
    with evaluating(model):
        for i in range(0, len(X), batch_size):
            logits = model.forward(X[i:i + batch_size])
            total_loss += loss_fn.forward(logits, y[i:i + batch_size]) * len(logits)
            correct += int((logits.argmax(axis=1) == y[i:i + batch_size]).sum())
    return total_loss / len(X), correct / len(X)


def train_step(model, loss_fn, X_batch, y_batch, optimizer, l2_lambda):
    """One mini-batch of gradient descent; returns (loss, logits). The model must be in train mode."""
    logits = model.forward(X_batch)                    # forward
    loss = loss_fn.forward(logits, y_batch)            # loss
    if not math.isfinite(loss):
        raise TrainingDiverged(f"the training loss became {loss} (lr={optimizer.lr:.3g})")
    model.backward(loss_fn.backward(), need_dx=False)  # backward: every layer's grads
    l2_regularize(model, l2_lambda)                    # + l2_lambda * W
    optimizer.step(model)                              # step
    return loss, logits


def train_epoch(model, X, y, optimizer, schedule, hp, rng, it=0):
    """One pass over the training data in a fresh random order; returns (mean loss, accuracy, it).

    it: the iteration count at the start (the schedule's clock); the returned one is at the end.
    """
    loss_fn, n, batch_size = SoftmaxCrossEntropy(), len(X), hp["batch_size"]
    loss_sum, correct = 0.0, 0
    model.train()
    order = rng.permutation(n)
    for first in range(0, n, batch_size):
        idx = order[first:first + batch_size]
        # A gather per batch beats shuffling all of X; np.take is X[idx], twice as fast.
        X_batch, y_batch = np.take(X, idx, axis=0), y[idx]
        optimizer.lr = schedule(it)
        try:
            loss, logits = train_step(model, loss_fn, X_batch, y_batch, optimizer, hp["l2_lambda"])
        except TrainingDiverged as e:
            raise TrainingDiverged(f"{e} at iteration {it}") from None
        loss_sum += loss * len(idx)
        correct += int((logits.argmax(axis=1) == y_batch).sum())
        it += 1
    return loss_sum / n, correct / n, it


def _check_data(model, X, y, name):
    """Return X as a contiguous array of the model's dtype, or raise a clear ValueError."""
    if not isinstance(X, np.ndarray) or not isinstance(y, np.ndarray):
        raise ValueError(f"{name}: expected NumPy arrays, got {type(X).__name__} and {type(y).__name__}")
    if len(X) == 0 or len(X) != len(y) or y.ndim != 1:
        raise ValueError(f"{name}: expected X with N > 0 rows and labels of shape (N,), "
                         f"got X {X.shape} and y {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integers, got dtype {y.dtype}")
    dtype = next(iter(model.params.values())).dtype
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{name}: expected real numbers, got dtype {X.dtype}")
    # Converted once here, so no batch is upcast (or copied) inside the loop; a float64 value
    # beyond float32's range would become inf, so the check comes after the conversion.
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(X, dtype=dtype)
    check_finite(X, f"{name} (as {dtype})")
    return X, y


def train(model, X_train, y_train, X_val, y_val, *, checkpoint_path=None, restore_best=True,
          resume=False, callback=None, progress=True, metadata=None, **overrides):
    """Train model on (X_train, y_train) by mini-batch gradient descent; return the history.

    X_train: (N, ...) float array, y_train: (N,) integer labels; the same for validation.
    overrides: hyperparameters, see hyperparameters() (unknown names and bad values raise ConfigError).
    checkpoint_path: where the best weights by validation accuracy are saved (None: kept in
        memory only); beside it, "<name>.last.npz" holds the latest epoch for resume=True
        (which refuses to start, FileNotFoundError, when that file is missing).
    restore_best: put the best weights back into the model at the end.
    callback(history, model): called after every epoch; it may raise to stop training
        (the search raises optuna.TrialPruned).
    metadata: extra JSON-able facts stored in the checkpoint (e.g. the experiment, the data's mean and std).
    Returns a DataFrame with one row per epoch: epoch, lr, train_loss (data loss),
    train_total_loss (plus the L2 penalty of the weights at the end of the epoch), train_acc,
    val_loss, val_acc, seconds.
    """
    hp = hyperparameters(**overrides)
    if resume:
        check_resumable(checkpoint_path)
    X_train, y_train = _check_data(model, X_train, y_train, "training data")
    X_val, y_val = _check_data(model, X_val, y_val, "validation data")
    steps_per_epoch = math.ceil(len(X_train) / hp["batch_size"])
    schedule = lr_schedule(hp["lr"], hp["lr_schedule"], hp["decay_factor"], hp["decay_steps"],
                           total_steps=steps_per_epoch * hp["num_epochs"])
    optimizer, rng = make_optimizer(hp), np.random.default_rng(hp["seed"])
    history, best = [], {"val_acc": -1.0, "epoch": 0, "params": None}
    meta = {"hyperparameters": hp, **(metadata or {})}
    last_path = None
    if checkpoint_path is not None:
        checkpoint_path = Path(checkpoint_path)
        last_path = last_checkpoint(checkpoint_path)
        if resume:
            history, best = _resume(model, optimizer, rng, hp, last_path, checkpoint_path)

    bar = tqdm(total=hp["num_epochs"], initial=len(history), desc=_("epochs"), disable=not progress)
    for epoch in range(len(history) + 1, hp["num_epochs"] + 1):
        start = time.perf_counter()
        try:
            # Overflow in a diverging net is caught by the loss check, with a better message.
            with np.errstate(over="ignore", invalid="ignore"):
                train_loss, train_acc = train_epoch(model, X_train, y_train, optimizer, schedule, hp, rng,
                                                    it=(epoch - 1) * steps_per_epoch)[:2]
        except TrainingDiverged as e:
            bar.close()
            raise TrainingDiverged(_diverged_message(e, epoch, best, checkpoint_path)) from None
        val_loss, val_acc = evaluate(model, X_val, y_val)
        history.append({"epoch": epoch, "lr": optimizer.lr, "train_loss": train_loss,
                        "train_total_loss": train_loss + l2_penalty(model, hp["l2_lambda"]), "train_acc": train_acc,
                        "val_loss": val_loss, "val_acc": val_acc, "seconds": time.perf_counter() - start})
        if val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "epoch": epoch, "params": {k: v.copy() for k, v in model.params.items()}}
            if checkpoint_path is not None:
                save_model(model, checkpoint_path, **meta, epoch=epoch, metrics=history[-1])
        if last_path is not None:
            _save_last(model, optimizer, rng, hp, history, best, last_path)
        bar.update()
        bar.set_postfix(val_acc=f"{val_acc:.4f}", best=f"{best['val_acc']:.4f}")
        if callback is not None:
            callback(pd.DataFrame(history), model)
        if hp["patience"] and epoch - best["epoch"] >= hp["patience"]:
            break  # early stopping
    bar.close()
    if restore_best and best["params"] is not None:
        load_weights(model, best["params"], source="best weights")
    return pd.DataFrame(history)


def _diverged_message(error, epoch, best, checkpoint_path):
    kept = (f"The best checkpoint {checkpoint_path} (epoch {best['epoch']}, val_acc {best['val_acc']:.4f}) "
            "is unchanged." if checkpoint_path is not None and best["epoch"] else "No checkpoint was written.")
    return (f"epoch {epoch}: {error}. Try a lower learning rate (e.g. lr/10) or a smaller l2_lambda, "
            f"and check that the inputs are standardised. {kept}")


def _save_last(model, optimizer, rng, hp, history, best, path):
    """Everything needed to continue after the latest epoch, in one atomic file."""
    arrays, scalars = _flat_state(optimizer.state_dict())
    save_arrays(path, {**{f"model/{k}": v for k, v in model.params.items()},
                       **{f"optimizer/{k}": v for k, v in arrays.items()}},
                {"hyperparameters": hp, "history": history, "best_epoch": best["epoch"],
                 "best_val_acc": best["val_acc"], "rng": rng.bit_generator.state, "optimizer": scalars})


def _flat_state(state, prefix=""):
    """An optimiser's state_dict split into arrays (saved as .npy members) and JSON-able scalars."""
    arrays, scalars = {}, {}
    for k, v in state.items():
        if isinstance(v, dict):
            a, s = _flat_state(v, f"{prefix}{k}/")
            arrays.update(a)
            scalars[k] = s
        elif isinstance(v, np.ndarray):
            arrays[f"{prefix}{k}"] = v
        else:
            scalars[k] = v
    return arrays, scalars


def _nested_state(scalars, arrays, prefix=""):
    state = {}
    for k, v in scalars.items():
        state[k] = _nested_state(v, arrays, f"{prefix}{k}/") if isinstance(v, dict) else v
    for key, value in arrays.items():
        if key.startswith(prefix) and "/" not in key[len(prefix):]:
            state[key[len(prefix):]] = value
    return state


def _resume(model, optimizer, rng, hp, last_path, best_path):
    """Restore the state written by _save_last, checked before anything is changed; returns (history, best)."""
    arrays, meta = load_arrays(last_path)
    problem = _resume_problem(meta, hp)
    if problem:
        raise CheckpointError(f"{last_path}: cannot resume: {problem}; delete the file to start afresh")
    saved = {k: v for k, v in meta["hyperparameters"].items() if k != "num_epochs"}
    if saved != {k: v for k, v in hp.items() if k != "num_epochs"}:
        raise CheckpointError(f"{last_path} was written with other hyperparameters ({saved}); "
                              "resume with the same ones, or delete the file to start afresh")
    if hp["lr_schedule"] == "cosine" and meta["hyperparameters"].get("num_epochs") != hp["num_epochs"]:
        raise CheckpointError(f"{last_path} was written by a run of num_epochs "
                              f"{meta['hyperparameters'].get('num_epochs')}; the cosine schedule is spread over "
                              f"num_epochs, so resume with the same number, or delete the file to start afresh")
    model_arrays = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optimizer_arrays = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    fresh_rng = np.random.default_rng()
    try:
        fresh_rng.bit_generator.state = meta["rng"]
        optimizer.load_state_dict(_nested_state(meta["optimizer"], optimizer_arrays), model)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{last_path}: cannot resume: bad generator or optimiser state ({e})") from None
    load_weights(model, model_arrays, source=str(last_path))
    rng.bit_generator.state = fresh_rng.bit_generator.state
    best = {"val_acc": meta["best_val_acc"], "epoch": meta["best_epoch"], "params": None}
    if best["epoch"] and best_path.exists():
        best["params"] = load_arrays(best_path)[0]
    return meta["history"], best


def _resume_problem(meta, hp):
    """What is wrong with a resume file's record, or None."""
    need = {"hyperparameters": dict, "history": list, "best_epoch": int, "best_val_acc": (int, float),
            "rng": dict, "optimizer": dict}
    for key, kind in need.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            return f"{key!r} is missing or not a {kind.__name__ if isinstance(kind, type) else 'number'}"
    history = meta["history"]
    if len(history) > hp["num_epochs"]:
        return f"it holds {len(history)} epochs but num_epochs is {hp['num_epochs']}"
    if any(not isinstance(row, dict) or row.get("epoch") != i + 1 for i, row in enumerate(history)):
        return "its history is not one row per epoch 1, 2, ..."
    if not 0 <= meta["best_epoch"] <= len(history):
        return f"best_epoch {meta['best_epoch']} is outside the history of {len(history)} epochs"
    return None

