"""Where one training epoch of a notebook's experiment spends its time, against its GEMM-only floor.

    python -m bench.profile_epoch mlp_fashion              # notebook 03's MLP, 1 BLAS thread
    python -m bench.profile_epoch lenet5_fashion --fraction 0.1 --threads 1 2
    python -m bench.profile_epoch mlp_fashion --set hidden_sizes=[256,128] dropout=0 momentum=0 l2_lambda=0

The experiment is set up as the notebooks set it up (load_config, load_data, build_model,
train(**cfg["train"]) with a checkpoint), so the epoch timed is theirs: dropout, L2,
momentum or Adam, the schedule, the validation pass and the best checkpoint included.
Three measurements, alternating in one process so a slow minute hurts all alike:

* epoch: seconds of one train() epoch (history's "seconds"), checkpoint written;
* floor: the same matrix products, forward and backward, with the same shapes and memory
  layouts (a transposed operand stays transposed), for the training batches and the
  validation pass, and nothing else: what any NumPy implementation must spend;
* profile: one epoch of train_epoch's loop, written out here with a clock around each
  part (each layer's forward and backward, the loss, L2, the optimiser's step, the batch
  gather, the bookkeeping) and the validation pass; its total is a little above the epoch's
  (the clocks cost about a microsecond each). With one BLAS thread it is in CPU seconds.
"""
import argparse
import json
import math
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from module import Conv2D, Linear, SoftmaxCrossEntropy
from utils.core.experiment import build_model, experiment_metadata, load_data
from utils.core.models import inference_batch_size
from utils.core.optim import l2_regularize, lr_schedule
from utils.core.train import evaluate, make_optimizer, train
from utils.plumbing.config import load_config, parse_assignments


def notebook_experiment(name, fraction=1.0, overrides=None):
    """(cfg, data, model) as the notebooks make them; fraction < 1 keeps only the first part of
    the training and validation images (the same share of both, so the epoch keeps its mix)."""
    cfg = load_config(name, overrides)
    data = load_data(cfg)
    for split in ("train", "val"):
        keep = max(1, round(len(data[f"y_{split}"]) * fraction))
        data[f"X_{split}"], data[f"y_{split}"] = data[f"X_{split}"][:keep], data[f"y_{split}"][:keep]
    return cfg, data, build_model(cfg, data)


def epoch_seconds(cfg, data, model, folder):
    """(wall, CPU) seconds of one train() epoch exactly as the notebooks call it (the schedule
    spread over cfg's epochs). Wall: history's seconds; CPU: the whole call, with train()'s
    once-per-run check of the data (one pass over it)."""
    start = time.process_time()
    history = train(model, data["X_train"], data["y_train"], data["X_val"], data["y_val"],
                    checkpoint_path=Path(folder) / cfg["checkpoint"], progress=False, seed=cfg["seed"],
                    metadata=experiment_metadata(cfg, data), **{**cfg["train"], "num_epochs": 1})
    return float(history.seconds.iloc[0]), time.process_time() - start


# ---------------------------------------------------------------- the GEMM-only floor

def gemm_shapes(model, x):
    """The matrix products of one training step on batch x, as (a, b, need_dx) per layer with
    weights: the forward product's operands in the layouts the layer uses."""
    products = []
    for layer in model.layers:
        if isinstance(layer, Linear):
            products.append(("linear", x.shape[0], layer.params["W"].shape))
        elif isinstance(layer, Conv2D):
            n, _, h, w = x.shape
            k, p, s = layer.kernel_size, layer.padding, layer.stride
            ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
            products.append(("conv", ho * wo * n, layer.params["W"].reshape(layer.out_channels, -1).shape))
        x = layer.forward(x)
    return products


class Floor:
    """The epoch's matrix products alone, with operands allocated once (random, the model's dtype)."""

    def __init__(self, model, data, batch_size):
        rng, dtype = np.random.default_rng(0), data["X_train"].dtype
        n, n_val = len(data["X_train"]), len(data["X_val"])
        self.train_batches = [min(batch_size, n - i) for i in range(0, n, batch_size)]
        chunk = inference_batch_size(model, data["X_val"].shape[1:], data["X_val"].itemsize)
        self.val_batches = [min(chunk, n_val - i) for i in range(0, n_val, chunk)]
        self.operands = {}
        for m in set(self.train_batches) | set(self.val_batches):
            with np.errstate(all="ignore"):
                shapes = gemm_shapes(model, data["X_train"][:m].copy())
            self.operands[m] = [(kind, rng.standard_normal((rows, w[0] if kind == "linear" else w[1]), dtype),
                                 rng.standard_normal(w, dtype), rng.standard_normal((rows, w[1] if kind == "linear"
                                                                                     else w[0]), dtype))
                                for kind, rows, w in shapes]

    @staticmethod
    def step(operands, backward):
        for i, (kind, x, W, d) in enumerate(operands):
            if kind == "linear":
                x @ W                            # forward: x (N, in) @ W (in, out)
                if backward:
                    x.T @ d                      # dW
                    if i:
                        d @ W.T                  # dX (not for the first layer)
            else:                                # im2col: cols (CKK, M) kept as x.T, W (F, CKK)
                W @ x.T                          # forward
                if backward:
                    (x.T @ d).T                  # dW, as the layer computes it
                    if i:
                        W.T @ d.T                # dcols

    def seconds(self):
        """(training products, validation products, CPU seconds of both) in seconds."""
        start, start_cpu = time.perf_counter(), time.process_time()
        for m in self.train_batches:
            self.step(self.operands[m], True)
        middle = time.perf_counter()
        for m in self.val_batches:
            self.step(self.operands[m], False)
        return middle - start, time.perf_counter() - middle, time.process_time() - start_cpu


# ---------------------------------------------------------------- the profile

def profile_epoch(cfg, data, model, clock=time.perf_counter):
    """{part: seconds} of one epoch: train_epoch's loop with a clock around each part, then evaluate.

    clock: time.perf_counter (wall), or time.process_time (CPU: steadier on a busy machine,
    and the same as wall for one thread on an idle one)."""
    times = defaultdict(float)
    hp = cfg["train"]

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            start = clock()
            out = fn(*args, **kwargs)
            times[key] += clock() - start
            return out
        return wrapper

    originals = [(layer, layer.__dict__.get("forward"), layer.__dict__.get("backward")) for layer in model.layers]
    for i, layer in enumerate(model.layers):
        name = f"{i} {type(layer).__name__}"
        layer.forward, layer.backward = timed(f"{name} forward", layer.forward), timed(f"{name} backward",
                                                                                      layer.backward)
    X, y, n, batch_size = data["X_train"], data["y_train"], len(data["X_train"]), hp["batch_size"]
    optimizer, rng, loss_fn = make_optimizer(hp), np.random.default_rng(cfg["seed"]), SoftmaxCrossEntropy()
    schedule = lr_schedule(hp["lr"], hp["lr_schedule"], hp["decay_factor"], hp["decay_steps"],
                           total_steps=math.ceil(n / batch_size) * hp["num_epochs"])
    start_all = clock()
    try:
        model.train()
        order = rng.permutation(n)
        for it, first in enumerate(range(0, n, batch_size)):
            t0 = clock()
            idx = order[first:first + batch_size]
            X_batch, y_batch = np.take(X, idx, axis=0), y[idx]
            t1 = clock()
            optimizer.lr = schedule(it)
            logits = model.forward(X_batch)
            t2 = clock()
            loss = loss_fn.forward(logits, y_batch)
            t3 = clock()
            dlogits = loss_fn.backward()
            t4 = clock()
            model.backward(dlogits, need_dx=False)
            t5 = clock()
            l2_regularize(model, hp["l2_lambda"])
            t6 = clock()
            optimizer.step(model)
            t7 = clock()
            int((logits.argmax(axis=1) == y_batch).sum()), math.isfinite(loss)
            t8 = clock()
            for key, seconds in (("data gather", t1 - t0), ("loss forward", t3 - t2), ("loss backward", t4 - t3),
                                 ("L2", t6 - t5), ("optimiser step", t7 - t6), ("accuracy, loss check", t8 - t7)):
                times[key] += seconds
        train_part = clock() - start_all
        result = dict(times)  # the layers' clocks run on in evaluate; its total is what counts
        t0 = clock()
        evaluate(model, data["X_val"], data["y_val"])
        result["evaluation (all of it)"] = clock() - t0
        result["total (training loop)"] = train_part
    finally:
        for layer, forward, backward in originals:
            for attr, value in (("forward", forward), ("backward", backward)):
                if value is None:
                    layer.__dict__.pop(attr, None)
                else:
                    setattr(layer, attr, value)
    return result


def measure(name, threads, rounds, fraction=1.0, overrides=None):
    """Alternating rounds of (epoch, floor, profile) at the given BLAS threads, as a JSON-able dict."""
    cfg, data, model = notebook_experiment(name, fraction, overrides)
    floor = Floor(model, data, cfg["train"]["batch_size"])
    epochs, floors, profiles = [], [], []
    with threadpool_limits(threads, user_api="blas"), tempfile.TemporaryDirectory() as folder:
        epoch_seconds(cfg, data, model, folder)  # warm-up: first touch of buffers, BLAS set-up
        for _ in range(rounds):
            epochs.append(epoch_seconds(cfg, data, model, folder))
            floors.append(floor.seconds())
            profiles.append(profile_epoch(cfg, data, model, time.process_time if threads == 1 else time.perf_counter))
    return {"epochs": [e[0] for e in epochs], "epochs_cpu": [e[1] for e in epochs],
            "floor_train": [f[0] for f in floors], "floor_val": [f[1] for f in floors],
            "floor_cpu": [f[2] for f in floors],
            "profile": {k: statistics.median(p[k] for p in profiles) for k in profiles[0]},
            "images": len(data["X_train"]), "val": len(data["X_val"])}


def report(name, threads, r):
    epoch, ft, fv = (statistics.median(r[k]) for k in ("epochs", "floor_train", "floor_val"))
    floor = ft + fv
    print(f"{name}, {threads} BLAS thread{'s' * (threads > 1)}: {r['images']:,} training and {r['val']:,} validation "
          f"images; medians of {len(r['epochs'])} rounds")
    print(f"  epoch {epoch:.3f} s   GEMM-only floor {floor:.3f} s (training {ft:.3f} + validation {fv:.3f})   "
          f"epoch / floor {epoch / floor:.2f}")
    print(f"  rounds: epoch {' '.join(f'{s:.3f}' for s in r['epochs'])}; "
          f"floor {' '.join(f'{a + b:.3f}' for a, b in zip(r['floor_train'], r['floor_val']))}")
    profile = r["profile"]
    total = profile["total (training loop)"] + profile["evaluation (all of it)"]
    print(f"  {'part':<28}{'seconds':>9}{'share':>8}")
    for k, v in sorted(profile.items(), key=lambda kv: -kv[1]):
        if not k.startswith("total"):
            print(f"  {k:<28}{v:>9.3f}{v / total:>8.1%}")
    print(f"  {'profiled total':<28}{total:>9.3f}\n")
    return epoch / floor


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="mlp_fashion")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=1.0, help="share of the training and validation images")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides, e.g. lr=0.05")
    parser.add_argument("--json", action="store_true", help="print the measurements as one JSON line")
    args = parser.parse_args()
    overrides = dict(parse_assignments(args.set)) if args.set else None
    for threads in args.threads:
        result = measure(args.config, threads, args.rounds, args.fraction, overrides)
        if args.json:
            print(json.dumps(result))
        else:
            report(args.config, threads, result)


if __name__ == "__main__":
    main()
