"""The one training loop: mini-batch gradient descent with validation, best-weight saving and resume.

Every notebook, the hyperparameter search and the benchmark call ``train``; nothing
else updates weights.
"""
import difflib
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from module import EVAL_BATCH_SIZE, SoftmaxCrossEntropy, check_finite
from utils.checkpoint import load_arrays, load_weights, save_arrays, save_model
from utils.optim import OPTIMIZERS, l2_penalty, l2_regularize, lr_schedule

DEFAULTS = {
    "lr": 0.05,               # learning rate at iteration 0
    "num_epochs": 20,
    "batch_size": 128,
    "l2_lambda": 1e-4,        # L2 strength: loss += l2_lambda / 2 * sum(W**2)
    "optimizer": "sgd",       # "sgd" or "adam"
    "momentum": 0.9,          # SGD only; 0 is plain SGD
    "nesterov": False,        # SGD only
    "lr_schedule": "step",    # constant, step, exponential or cosine
    "decay_factor": 0.5,      # step / exponential: lr is multiplied by this ...
    "decay_steps": 2000,      # ... every decay_steps iterations
    "patience": None,         # stop after this many epochs without a better validation accuracy
    "seed": 0,                # shuffling order
}


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or inf."""


def hyperparameters(**overrides):
    """The training hyperparameters: DEFAULTS updated by overrides, checked before any work starts."""
    unknown = overrides.keys() - DEFAULTS.keys()
    if unknown:
        name = sorted(unknown)[0]
        close = [k for k in DEFAULTS if k.startswith(name)] or difflib.get_close_matches(name, DEFAULTS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown hyperparameter {name!r}{hint}; known: {', '.join(DEFAULTS)}")
    hp = {**DEFAULTS, **overrides}
    checks = [
        ("lr", hp["lr"] > 0, "a positive number"),
        ("num_epochs", _is_int(hp["num_epochs"]) and hp["num_epochs"] >= 1, "an integer >= 1"),
        ("batch_size", _is_int(hp["batch_size"]) and hp["batch_size"] >= 1, "an integer >= 1"),
        ("l2_lambda", hp["l2_lambda"] >= 0, "a number >= 0"),
        ("optimizer", hp["optimizer"] in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
        ("momentum", 0 <= hp["momentum"] < 1, "in [0, 1)"),
        ("patience", hp["patience"] is None or (_is_int(hp["patience"]) and hp["patience"] >= 1),
         "None or an integer >= 1"),
    ]
    for name, ok, expected in checks:
        if not ok:
            raise ValueError(f"hyperparameter {name} must be {expected}, got {hp[name]!r}")
    lr_schedule(hp["lr"], hp["lr_schedule"], hp["decay_factor"], hp["decay_steps"], total_steps=1)
    return hp


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def make_optimizer(hp):
    """The optimiser named by hp["optimizer"], set up from the matching hyperparameters."""
    if hp["optimizer"] == "sgd":
        return OPTIMIZERS["sgd"](hp["lr"], momentum=hp["momentum"], nesterov=hp["nesterov"])
    return OPTIMIZERS["adam"](hp["lr"])


def evaluate(model, X, y, batch_size=EVAL_BATCH_SIZE):
    """Mean cross-entropy loss and accuracy of the model on (X, y), in eval mode."""
    check_finite(X, "evaluate")
    model.eval()
    loss_fn, total_loss, correct = SoftmaxCrossEntropy(), 0.0, 0
    for i in range(0, len(X), batch_size):
        logits = model.forward(X[i:i + batch_size])
        total_loss += loss_fn.forward(logits, y[i:i + batch_size]) * len(logits)
        correct += int((logits.argmax(axis=1) == y[i:i + batch_size]).sum())
    return total_loss / len(X), correct / len(X)


def _check_data(model, X, y, name):
    """Return X as a contiguous array of the model's dtype, or raise a clear ValueError."""
    if not isinstance(X, np.ndarray) or not isinstance(y, np.ndarray):
        raise ValueError(f"{name}: expected NumPy arrays, got {type(X).__name__} and {type(y).__name__}")
    if len(X) == 0 or len(X) != len(y) or y.ndim != 1:
        raise ValueError(f"{name}: expected X with N > 0 rows and labels of shape (N,), "
                         f"got X {X.shape} and y {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integers, got dtype {y.dtype}")
    check_finite(X, name)
    dtype = next(iter(model.params.values())).dtype
    # Converted once here, so no batch is upcast (or copied) inside the loop.
    return np.ascontiguousarray(X, dtype=dtype), y


def train(model, X_train, y_train, X_val, y_val, *, checkpoint_path=None, restore_best=True,
          resume=False, callback=None, augment=None, progress=True, metadata=None, **overrides):
    """Train model on (X_train, y_train) by mini-batch gradient descent; return the history.

    X_train: (N, ...) float array, y_train: (N,) integer labels; the same for validation.
    overrides: hyperparameters, see DEFAULTS (unknown names and bad values raise ValueError).
    checkpoint_path: where the best weights by validation accuracy are saved (None: kept in
        memory only); beside it, "<name>.last.npz" holds the latest epoch for resume=True.
    restore_best: put the best weights back into the model at the end.
    callback(history, model): called after every epoch; it may raise to stop training
        (the search raises optuna.TrialPruned).
    augment(X_batch, rng): returns a changed copy of each training batch (e.g.
        utils.data.random_mirror); rng is the loop's seeded generator, so a resumed run
        draws what the uninterrupted one would have drawn.
    metadata: extra JSON-able facts stored in the checkpoint (e.g. the data's mean and std).
    Returns a DataFrame with one row per epoch: epoch, lr, train_loss (data loss),
    train_total_loss (plus the L2 penalty of the weights at the end of the epoch), train_acc,
    val_loss, val_acc, seconds.
    """
    hp = hyperparameters(**overrides)
    X_train, y_train = _check_data(model, X_train, y_train, "training data")
    X_val, y_val = _check_data(model, X_val, y_val, "validation data")
    n, batch_size = len(X_train), hp["batch_size"]
    steps_per_epoch = math.ceil(n / batch_size)
    schedule = lr_schedule(hp["lr"], hp["lr_schedule"], hp["decay_factor"], hp["decay_steps"],
                           total_steps=steps_per_epoch * hp["num_epochs"])
    optimizer, loss_fn = make_optimizer(hp), SoftmaxCrossEntropy()
    rng = np.random.default_rng(hp["seed"])
    history, best = [], {"val_acc": -1.0, "epoch": 0, "params": None}
    meta = {"hyperparameters": hp, **(metadata or {})}
    last_path = None
    if checkpoint_path is not None:
        checkpoint_path = Path(checkpoint_path)
        last_path = checkpoint_path.with_name(checkpoint_path.stem + ".last.npz")
        if resume and last_path.exists():
            history, best = _resume(model, optimizer, rng, hp, last_path, checkpoint_path)

    bar = tqdm(total=hp["num_epochs"], initial=len(history), desc="epochs", disable=not progress)
    for epoch in range(len(history) + 1, hp["num_epochs"] + 1):
        start, it = time.perf_counter(), (epoch - 1) * steps_per_epoch
        model.train()
        loss_sum, correct = 0.0, 0
        order = rng.permutation(n)
        # Overflow in a diverging net is caught below by the loss check, with a better message.
        with np.errstate(over="ignore", invalid="ignore"):
            for first in range(0, n, batch_size):
                idx = order[first:first + batch_size]
                X, y = X_train[idx], y_train[idx]  # a gather per batch beats shuffling all of X
                if augment is not None:
                    X = augment(X, rng)
                optimizer.lr = schedule(it)
                logits = model.forward(X)
                loss = loss_fn.forward(logits, y)
                if not math.isfinite(loss):
                    bar.close()
                    raise TrainingDiverged(_diverged_message(loss, epoch, it, optimizer.lr, best, checkpoint_path))
                model.backward(loss_fn.backward(), need_dx=False)
                l2_regularize(model, hp["l2_lambda"])
                optimizer.step(model)
                loss_sum += loss * len(idx)
                correct += int((logits.argmax(axis=1) == y).sum())
                it += 1
        val_loss, val_acc = evaluate(model, X_val, y_val)
        history.append({"epoch": epoch, "lr": optimizer.lr, "train_loss": loss_sum / n,
                        "train_total_loss": loss_sum / n + l2_penalty(model, hp["l2_lambda"]), "train_acc": correct / n,
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
            break
    bar.close()
    if restore_best and best["params"] is not None:
        load_weights(model, best["params"], source="best weights")
    return pd.DataFrame(history)


def _diverged_message(loss, epoch, it, lr, best, checkpoint_path):
    kept = (f"The best checkpoint {checkpoint_path} (epoch {best['epoch']}, val_acc {best['val_acc']:.4f}) "
            "is unchanged." if checkpoint_path is not None and best["epoch"] else "No checkpoint was written.")
    return (f"the training loss became {loss} at epoch {epoch}, iteration {it} (lr={lr:.3g}). "
            f"Try a lower learning rate (e.g. lr/10), a smaller batch-size-to-lr ratio, or a stronger "
            f"l2_lambda. {kept}")


def _save_last(model, optimizer, rng, hp, history, best, path):
    """Everything needed to continue after the latest epoch, in one atomic file."""
    arrays = {f"model/{k}": v for k, v in model.params.items()}
    for slot, values in optimizer.slots.items():
        arrays.update({f"optimizer/{slot}/{k}": v for k, v in values.items()})
    save_arrays(path, arrays, {
        "hyperparameters": hp, "history": history, "best_epoch": best["epoch"], "best_val_acc": best["val_acc"],
        "rng": rng.bit_generator.state, "optimizer_t": getattr(optimizer, "t", 0)})


def _resume(model, optimizer, rng, hp, last_path, best_path):
    """Restore the state written by _save_last; returns (history, best)."""
    arrays, meta = load_arrays(last_path)
    saved = {k: v for k, v in meta["hyperparameters"].items() if k != "num_epochs"}
    if saved != {k: v for k, v in hp.items() if k != "num_epochs"}:
        raise ValueError(f"{last_path} was written with other hyperparameters ({saved}); "
                         "resume with the same ones, or delete the file to start afresh")
    load_weights(model, {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")},
                 source=str(last_path))
    for key, value in arrays.items():
        if key.startswith("optimizer/"):
            _, slot, name = key.split("/", 2)
            optimizer.slots[slot][name] = value
    if hasattr(optimizer, "t"):
        optimizer.t = meta["optimizer_t"]
    rng.bit_generator.state = meta["rng"]
    best = {"val_acc": meta["best_val_acc"], "epoch": meta["best_epoch"], "params": None}
    if best["epoch"] and best_path.exists():
        best["params"], _ = load_arrays(best_path)
    return meta["history"], best


def main():
    """Train the default MLP on Fashion-MNIST and report its test accuracy (python -m utils.train)."""
    import argparse

    from module import mlp
    from utils.data import prepare_fashion_mnist
    from utils.paths import LOG_DIR

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--hidden-sizes", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["num_epochs"])
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    parser.add_argument("--l2-lambda", type=float, default=DEFAULTS["l2_lambda"])
    parser.add_argument("--checkpoint", default=str(LOG_DIR / "best_model.npz"))
    args = parser.parse_args()
    data = prepare_fashion_mnist()
    model = mlp([data["X_train"].shape[1], *args.hidden_sizes, 10], args.activation, rng=0)
    history = train(model, data["X_train"], data["y_train"], data["X_val"], data["y_val"],
                    checkpoint_path=args.checkpoint, num_epochs=args.epochs, lr=args.lr, l2_lambda=args.l2_lambda,
                    metadata={"mean": data["mean"], "std": data["std"]})
    print(history.round(4).to_string(index=False))
    test_loss, test_acc = evaluate(model, data["X_test"], data["y_test"])
    print(f"best epoch {int(history.val_acc.idxmax()) + 1}: val_acc {history.val_acc.max():.4f}; "
          f"test loss {test_loss:.4f}, test accuracy {test_acc:.4f}")


if __name__ == "__main__":
    main()
