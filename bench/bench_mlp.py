"""Benchmark: one epoch of a 784-256-128-10 MLP, this project against PyTorch and scikit-learn.

Every contender trains the same network (float32, batch 128, plain SGD, constant lr) on the
60,000 Fashion-MNIST training images, in a process of its own, and the processes alternate
(ours, torch, sklearn, ours, ...), so that a slow minute of the machine hurts all alike.
Seconds per epoch are the median over the epochs after the first (warm-up) of all rounds.
"GEMM only" is the time of the epoch's eight matrix products alone, the floor for any
NumPy implementation: forward 3, dW 3, dX 2 (nobody needs the first layer's dX). It is timed
after each of our epochs, in the same process, and its median is taken the same way.

    python -m bench.bench_mlp                  # 1 and 2 BLAS threads, 3 rounds
    python -m bench.bench_mlp --threads 1 --rounds 1 --epochs 3
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from bench import blas

SIZES = [784, 256, 128, 10]
BATCH_SIZE, LR = 128, 0.05
CONTENDERS = {"ours": "numpy", "torch": "torch", "sklearn": "sklearn"}


def fashion_mnist(held_out=10000):
    """(X, y, X_held, y_held): the official training split, scaled to [0, 1], float32, flat, its last
    held_out images set apart to check that every contender learns. The test split is never read:
    a benchmark compares speed, and its accuracy column is a sanity check, not a result."""
    from utils.core.datasets import load_split
    X, y = load_split("fashion_mnist", "train")
    X = X.reshape(len(X), -1) * np.float32(1 / 255)
    return X[:-held_out], y[:-held_out], X[-held_out:], y[-held_out:]


def run_ours(X, y, X_held, y_held, epochs, gemm_seconds=None, cpu=None):
    """Our epochs; after each one (outside its timing) a GEMM-only epoch is timed into gemm_seconds,
    so that the floor is measured in the same minutes as the epochs it is compared with.
    cpu: a dict that gets the CPU seconds of each epoch ("epochs") and of each floor ("gemm")."""
    from utils.core.models import mlp
    from utils.core.train import evaluate, train
    cpu = {"epochs": [], "gemm": []} if cpu is None else cpu
    last = [time.process_time()]

    def floor(history, model):
        now = time.process_time()
        cpu["epochs"].append(now - last[0])  # the epoch and train()'s bookkeeping after it
        if gemm_seconds is not None:
            gemm_seconds.append(gemm_only(len(X)))
            cpu["gemm"].append(time.process_time() - now)
        last[0] = time.process_time()

    model = mlp(SIZES, "relu", rng=0)
    # A small validation set: the others do not validate per epoch, so keep ours cheap too.
    history = train(model, X, y, X_held[:1000], y_held[:1000], num_epochs=epochs, batch_size=BATCH_SIZE, lr=LR,
                    momentum=0.0, l2_lambda=0.0, lr_schedule="constant", restore_best=False, progress=False,
                    callback=floor)
    return list(history.seconds), evaluate(model, X_held, y_held)[1]


def run_torch(X, y, X_held, y_held, epochs):
    import torch
    torch.manual_seed(0)
    layers = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    return train_torch(model, X, y, X_held, y_held, epochs, BATCH_SIZE, LR)


def train_torch(model, X, y, X_held, y_held, epochs, batch_size, lr):
    """Plain-SGD epochs of a PyTorch model: (seconds per epoch, held-out accuracy). Shared with bench_lenet."""
    import torch
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    gen, seconds = torch.Generator().manual_seed(0), []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(X), generator=gen)
        for first in range(0, len(X), batch_size):
            idx = order[first:first + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(X[idx]), y[idx]).backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(X_held)).argmax(1).numpy() == y_held).mean()
    return seconds, float(accuracy)


def run_sklearn(X, y, X_held, y_held, epochs):
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=SIZES[1:-1], solver="sgd", learning_rate_init=LR, momentum=0.0,
                        nesterovs_momentum=False, alpha=0.0, batch_size=BATCH_SIZE, random_state=0)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        clf.partial_fit(X, y, classes=np.arange(10))  # one pass over the data per call
        seconds.append(time.perf_counter() - start)
    return seconds, float(clf.score(X_held, y_held))


def gemm_only(n, repeats=1):
    """Seconds for the epoch's matrix products alone, with the shapes of a real epoch (best of repeats)."""
    rng = np.random.default_rng(0)
    W = [rng.standard_normal((a, b), dtype=np.float32) for a, b in zip(SIZES[:-1], SIZES[1:])]
    batches = [min(BATCH_SIZE, n - first) for first in range(0, n, BATCH_SIZE)]
    inputs = {m: rng.standard_normal((m, SIZES[0]), dtype=np.float32) for m in set(batches)}
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for m in batches:
            acts = [inputs[m]]
            for w in W:
                acts.append(acts[-1] @ w)
            grad = acts[-1]
            for i in reversed(range(len(W))):
                acts[i].T @ grad  # dW
                if i:
                    grad = grad @ W[i].T  # dX, except for the first layer
        times.append(time.perf_counter() - start)
    return min(times)


def worker(name, epochs):
    """Run one contender in this process and print its result as one JSON line."""
    from threadpoolctl import threadpool_limits
    threads = int(os.environ["BENCH_THREADS"])
    X, y, X_held, y_held = fashion_mnist()
    if name == "torch":
        import torch
        torch.set_num_threads(threads)
    with threadpool_limits(threads):
        if name == "ours":
            gemm, cpu = [], {"epochs": [], "gemm": []}
            seconds, accuracy = run_ours(X, y, X_held, y_held, epochs, gemm, cpu)
            result = {"seconds": seconds, "accuracy": accuracy, "gemm": gemm[1:],
                      "cpu": cpu["epochs"][1:], "gemm_cpu": cpu["gemm"][1:]}
        else:
            seconds, accuracy = globals()[f"run_{name}"](X, y, X_held, y_held, epochs)
            result = {"seconds": seconds, "accuracy": accuracy}
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of all contenders")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per process; the first is a warm-up")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.epochs)

    from bench.bench_notebooks import torch_python  # the project's modules, which a torch-only venv lacks
    pythons = {c: sys.executable for c, module in CONTENDERS.items() if importlib.util.find_spec(module)}
    if "torch" not in pythons and torch_python():
        pythons["torch"] = torch_python()  # e.g. a throwaway venv: PyTorch is no requirement of the project
    available = [c for c in CONTENDERS if c in pythons]
    missing = sorted(set(CONTENDERS) - set(available))
    if missing:
        print(f"not installed, left out: {', '.join(missing)} (pip install scikit-learn; torch: a CPU build, "
              f"see bench/bench_notebooks.py)")
    print(blas.describe())
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}; {SIZES}, batch {BATCH_SIZE}, plain SGD, "
          f"60,000 images per epoch; median of epochs 2..{args.epochs} over {args.rounds} rounds\n")
    for threads in args.threads:
        env = {**os.environ, "BENCH_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
               "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
        results = {c: {"seconds": [], "accuracy": [], "gemm": [], "cpu": [], "gemm_cpu": []} for c in available}
        for _ in range(args.rounds):
            for name in available:
                out = subprocess.run([pythons[name], "-m", "bench.bench_mlp", "--worker", name,
                                      "--epochs", str(args.epochs)], env=env, check=True,
                                     capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                results[name]["seconds"] += r["seconds"][1:]
                results[name]["accuracy"].append(r["accuracy"])
                for key in ("gemm", "cpu", "gemm_cpu"):
                    results[name][key] += r.get(key, [])
        print_table(threads, results)


def print_table(threads, results):
    """Median seconds per epoch, the ratio to ours and the held-out accuracy of each contender
    (and ours against its GEMM-only time, where it was measured)."""
    ours = statistics.median(results["ours"]["seconds"])
    gemm = statistics.median(results["ours"]["gemm"]) if results["ours"].get("gemm") else None
    print(f"{threads} BLAS thread{'s' if threads > 1 else ''}" + (f"; GEMM only: {gemm:.3f} s/epoch" if gemm else ""))
    print(f"  {'contender':<10}{'s/epoch':>9}{'x ours':>8}{'held-out':>10}")
    for name, r in results.items():
        s = statistics.median(r["seconds"])
        print(f"  {name:<10}{s:>9.3f}{s / ours:>8.2f}{statistics.mean(r['accuracy']):>10.4f}")
    if gemm:
        print(f"  ours / GEMM only: {ours / gemm:.2f}" + (
            f" (in CPU seconds, steadier on a busy machine: {statistics.median(results['ours']['cpu']):.3f} / "
            f"{statistics.median(results['ours']['gemm_cpu']):.3f} = "
            f"{statistics.median(results['ours']['cpu']) / statistics.median(results['ours']['gemm_cpu']):.2f})"
            if results["ours"].get("gemm_cpu") else ""))
        print(f"  every epoch, ours: {' '.join(f'{s:.3f}' for s in results['ours']['seconds'])}; "
              f"GEMM only: {' '.join(f'{s:.3f}' for s in results['ours']['gemm'])}")
    print()


if __name__ == "__main__":
    main()
