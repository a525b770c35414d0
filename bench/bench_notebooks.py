"""Benchmark: one epoch of notebook 03's MLP and notebook 05's LeNet-5, against their GEMM-only
floor and against PyTorch with the same settings.

    python -m bench.bench_notebooks                          # both, 1 and 2 BLAS threads
    python -m bench.bench_notebooks --configs lenet5_fashion --threads 1 --fraction 0.2

Each experiment is set up as its notebook sets it up (bench.profile_epoch: the config's
model, data, optimiser, schedule, L2, dropout, validation pass and checkpoint). In every
round our process (epochs, each followed by the floor and a profile, in the same process)
and PyTorch's (bench/torch_worker.py: the same network, optimiser, L2 as weight_decay on the
weights, schedule, batch size and validation pass) run one after the other, so a slow minute
of the shared machine hurts both alike; figures are medians over rounds. Wall seconds decide;
CPU seconds (user + system of the process) are shown beside them for one thread, where a
machine shared with other jobs inflates wall time but not CPU time.

PyTorch is no requirement of this project: it is looked for in BENCH_TORCH_PYTHON, then in
/tmp/torchvenv/bin/python (python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install
torch numpy threadpoolctl), then in this Python; without it its columns are left out, with a line saying so.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench import blas
from bench.profile_epoch import notebook_experiment

DEFAULT_FRACTION = {"mlp_fashion": 1.0, "lenet5_fashion": 0.2}
TORCH_WORKER = Path(__file__).with_name("torch_worker.py")


def torch_python():
    """A Python with torch, or None."""
    candidates = [os.environ.get("BENCH_TORCH_PYTHON"), "/tmp/torchvenv/bin/python", sys.executable]
    for python in filter(None, candidates):
        if Path(python).exists() and subprocess.run([python, "-c", "import torch, threadpoolctl"],
                                                     capture_output=True).returncode == 0:
            return python
    return None


def torch_spec(cfg, threads, epochs):
    m, t = cfg["model"], cfg["train"]
    return {"model": m["builder"], "sizes": [784, *m.get("hidden_sizes", []), 10], "dropout": m.get("dropout", 0.0),
            "optimizer": t["optimizer"], "lr": t["lr"], "momentum": t["momentum"], "nesterov": t["nesterov"],
            "l2_lambda": t["l2_lambda"], "lr_schedule": t["lr_schedule"], "num_epochs": t["num_epochs"],
            "batch_size": t["batch_size"], "epochs": epochs, "threads": threads}


def run_worker(command, threads):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench(name, threads, rounds, fraction, python):
    """{"ours": [worker results], "torch": [...]} of alternating rounds."""
    cfg, data, _ = notebook_experiment(name, fraction)
    results = {"ours": [], "torch": []}
    with tempfile.TemporaryDirectory() as folder:
        if python:
            for k in ("X_train", "y_train", "X_val", "y_val"):
                np.save(Path(folder) / f"{k}.npy", data[k])
        for _ in range(rounds):
            results["ours"].append(run_worker([sys.executable, "-m", "bench.profile_epoch", name, "--json",
                                               "--threads", str(threads), "--rounds", "2",
                                               "--fraction", str(fraction)], threads))
            if python:
                results["torch"].append(run_worker([python, str(TORCH_WORKER), folder,
                                                    json.dumps(torch_spec(cfg, threads, 3))], threads))
    return results, len(data["X_train"]), len(data["X_val"])


def median(values):
    return statistics.median(values) if values else float("nan")


def report(name, threads, results, n_train, n_val):
    ours = results["ours"]
    epoch = median([s for r in ours for s in r["epochs"]])
    floor = median([a + b for r in ours for a, b in zip(r["floor_train"], r["floor_val"])])
    epoch_cpu = median([s for r in ours for s in r["epochs_cpu"]])
    floor_cpu = median([s for r in ours for s in r["floor_cpu"]])
    print(f"{name}, {threads} BLAS thread{'s' * (threads > 1)}, {n_train:,} training + {n_val:,} validation images "
          f"per epoch, {len(ours)} rounds")
    print(f"  ours        {epoch:7.3f} s wall  {epoch_cpu:7.3f} s CPU")
    print(f"  GEMM only   {floor:7.3f} s wall  {floor_cpu:7.3f} s CPU    ours / floor: {epoch / floor:.2f} wall, "
          f"{epoch_cpu / floor_cpu:.2f} CPU")
    if results["torch"]:
        # The first epoch of each PyTorch process is its warm-up, as ours is.
        torch_wall = median([s for r in results["torch"] for s in r["seconds"][1:]])
        torch_cpu = median([s for r in results["torch"] for s in r["cpu"][1:]])
        print(f"  PyTorch     {torch_wall:7.3f} s wall  {torch_cpu:7.3f} s CPU    ours / PyTorch: "
              f"{epoch / torch_wall:.2f} wall, {epoch_cpu / torch_cpu:.2f} CPU")
        # ours / PyTorch if our epoch did nothing but these matrix products (timed alone, this BLAS kernel and threads)
        print(f"  {'':<40}GEMM only / PyTorch: {floor / torch_wall:.2f} wall, {floor_cpu / torch_cpu:.2f} CPU")
    print(f"  every round: ours {' '.join(f'{s:.2f}' for r in ours for s in r['epochs'])}"
          + (f"; PyTorch {' '.join(f'{s:.2f}' for r in results['torch'] for s in r['seconds'][1:])}"
             if results["torch"] else ""))
    profile = {k: median([r["profile"][k] for r in ours]) for k in ours[0]["profile"]}
    total = profile.pop("total (training loop)") + profile["evaluation (all of it)"]
    print(f"  where our epoch goes (profiled, {total:.3f} s):")
    for k, v in sorted(profile.items(), key=lambda kv: -kv[1]):
        print(f"    {k:<28}{v:>8.3f} s{v / total:>7.1%}")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_FRACTION))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fraction", type=float, help="share of the images per epoch (default: all for the "
                                                       "MLP, 0.2 for LeNet-5, whose epoch is 108,000 images)")
    args = parser.parse_args()
    python = torch_python()
    print(blas.describe())
    print(f"machine: {os.cpu_count()} cores; numpy {np.__version__}; "
          + (f"PyTorch from {python}" if python else "PyTorch is not installed: its columns are left out "
                                                      "(see this module's docstring to add it)") + "\n")
    for name in args.configs:
        fraction = args.fraction or DEFAULT_FRACTION.get(name, 1.0)
        for threads in args.threads:
            report(name, threads, *bench(name, threads, args.rounds, fraction, python))


if __name__ == "__main__":
    main()
