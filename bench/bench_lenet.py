"""Benchmark: one epoch of LeNet-5 on Fashion-MNIST, this project against PyTorch.

Both train the same network (utils.core.models.lenet5: conv 6@5x5 pad 2, pool, conv 16@5x5, pool,
fc 120, 84, 10, ReLU), float32, batch 64, plain SGD, constant lr, on the 60,000 training
images, each in a process of its own; the processes alternate (ours, torch, ours, ...) so
that a slow minute of the shared machine hurts both alike. Seconds per epoch are the
median over the epochs after the first (warm-up) of all rounds. The target of issue 6:
ours at most 2x PyTorch's time with one BLAS thread.

    python -m bench.bench_lenet                          # 1 thread, 3 rounds of 2 epochs
    python -m bench.bench_lenet --rounds 1 --images 10000
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

from bench import blas
from bench.bench_mlp import fashion_mnist, print_table, train_torch

BATCH_SIZE, LR = 64, 0.05


def images(n):
    """The first n training images as (n, 1, 28, 28) and the test set, float32 in [0, 1]."""
    X, y, X_held, y_held = fashion_mnist()
    return X[:n].reshape(-1, 1, 28, 28), y[:n], X_held.reshape(-1, 1, 28, 28), y_held


def run_ours(X, y, X_held, y_held, epochs):
    from utils.core.models import lenet5
    from utils.core.train import evaluate, train
    model = lenet5(rng=0)
    # A small validation set: PyTorch does not validate per epoch, so keep ours cheap too.
    history = train(model, X, y, X_held[:500], y_held[:500], num_epochs=epochs, batch_size=BATCH_SIZE, lr=LR,
                    momentum=0.0, l2_lambda=0.0, lr_schedule="constant", restore_best=False, progress=False)
    return list(history.seconds), evaluate(model, X_held, y_held)[1]


def run_torch(X, y, X_held, y_held, epochs):
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    return train_torch(model, X, y, X_held, y_held, epochs, BATCH_SIZE, LR)


def worker(name, epochs, n):
    """Run one contender in this process and print its result as one JSON line."""
    from threadpoolctl import threadpool_limits
    threads = int(os.environ["BENCH_THREADS"])
    data = images(n)
    if name == "torch":
        import torch
        torch.set_num_threads(threads)
    with threadpool_limits(threads):
        seconds, accuracy = globals()[f"run_{name}"](*data, epochs)
    print(json.dumps({"seconds": seconds, "accuracy": accuracy}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both contenders")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per process; the first is a warm-up")
    parser.add_argument("--images", type=int, default=60000, help="training images per epoch")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first one is a warm-up and is not counted")
    if args.worker:
        return worker(args.worker, args.epochs, args.images)

    from bench.bench_notebooks import torch_python  # the project's modules, which a torch-only venv lacks
    pythons = {"ours": sys.executable}
    if importlib.util.find_spec("torch") or torch_python():
        pythons["torch"] = sys.executable if importlib.util.find_spec("torch") else torch_python()
    contenders = list(pythons)
    if len(contenders) == 1:
        print("torch is not installed, left out (install a CPU build, e.g. in a throwaway venv: see "
              "bench/bench_notebooks.py)")
    print(blas.describe())
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}; LeNet-5, batch {BATCH_SIZE}, plain SGD, "
          f"{args.images:,} images per epoch; median of epochs 2..{args.epochs} over {args.rounds} rounds\n")
    for threads in args.threads:
        env = {**os.environ, "BENCH_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
               "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
        results = {c: {"seconds": [], "accuracy": []} for c in contenders}
        for _ in range(args.rounds):
            for name in contenders:
                out = subprocess.run([pythons[name], "-m", "bench.bench_lenet", "--worker", name,
                                      "--epochs", str(args.epochs), "--images", str(args.images)],
                                     env=env, check=True, capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                results[name]["seconds"] += r["seconds"][1:]
                results[name]["accuracy"].append(r["accuracy"])
        print_table(threads, results)


if __name__ == "__main__":
    main()
