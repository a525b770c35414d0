"""Benchmark: LeNet-5's convolution and pooling layers, ours against PyTorch's CPU kernels, layer by layer.

    python -m bench.bench_conv                 # batch 64 (notebook 05's), 1 BLAS thread, 5 rounds

The shapes of notebook 05's LeNet-5 on Fashion-MNIST: conv 1->6 5x5 pad 2 on 28x28, pool 2,
conv 6->16 5x5 on 14x14, pool 2. Forward and backward as training runs them (the first
conv computes no input gradient). Ours is split further: the im2col copies, the GEMMs, and
col2im (the input gradient's scatter-add), so the cost beside the matrix products shows.
Each side runs in a process of its own (PyTorch from a Python that has it, see
bench/bench_notebooks.py), alternating, in CPU milliseconds per batch (median of 20 calls
per round, then over the rounds): CPU time, not wall time, because the machine is shared.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

BATCH = 64
LAYERS = [("conv1", "conv", (1, 6, 28, 2), False), ("pool1", "pool", (6, 28), None),
          ("conv2", "conv", (6, 16, 14, 0), True), ("pool2", "pool", (16, 10), None)]


def cpu_ms(fn, calls=20):
    fn()
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e3


def ours():
    from module import Conv2D, MaxPool2D
    rng, out = np.random.default_rng(0), {}
    for name, kind, shape, need_dx in LAYERS:
        if kind == "conv":
            c, f, h, pad = shape
            layer = Conv2D(c, f, 5, padding=pad, rng=0)
        else:
            c, h = shape
            layer = MaxPool2D(2)
        # In the layout the layer above hands over: batch-innermost memory, seen as (N, C, H, W).
        x = np.ascontiguousarray(rng.standard_normal((c, h, h, BATCH), dtype=np.float32)).transpose(3, 0, 1, 2)
        if name == "conv1":
            x = np.ascontiguousarray(x)  # the data set's own (N, C, H, W) batch
        y = layer.forward(x)
        d = rng.standard_normal(y.shape, dtype=np.float32)
        d = np.ascontiguousarray(d.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)  # as the layer above sends it
        out[f"{name} forward"] = cpu_ms(lambda: layer.forward(x))
        out[f"{name} backward"] = cpu_ms(lambda: layer.backward(d, need_dx=bool(need_dx)))
        if kind == "conv":
            W, cols = layer.params["W"].reshape(f, -1), layer.cols
            dm = d.transpose(1, 2, 3, 0).reshape(f, -1)
            gemm_f, gemm_w = cpu_ms(lambda: W @ cols), cpu_ms(lambda: (cols @ dm.T).T)
            out[f"{name}   of which GEMM (forward)"] = gemm_f
            out[f"{name}   of which im2col and bias"] = out[f"{name} forward"] - gemm_f
            out[f"{name}   of which GEMM dW"] = gemm_w
            if need_dx:
                gemm_x = cpu_ms(lambda: W.T @ dm)
                no_dx = cpu_ms(lambda: layer.backward(d, need_dx=False))
                out[f"{name}   of which GEMM dcols"] = gemm_x
                out[f"{name}   of which col2im"] = out[f"{name} backward"] - no_dx - gemm_x
    return out


def torch_side():
    import torch
    torch.set_num_threads(1)
    rng, out = np.random.default_rng(0), {}
    for name, kind, shape, need_dx in LAYERS:
        if kind == "conv":
            c, f, h, pad = shape
            layer = torch.nn.Conv2d(c, f, 5, padding=pad)
        else:
            c, h = shape
            layer = torch.nn.MaxPool2d(2)
        x = torch.from_numpy(rng.standard_normal((BATCH, c, h, h), dtype=np.float32))
        x.requires_grad_(bool(need_dx) or kind == "pool")
        with torch.no_grad():
            d = torch.randn_like(layer(x))

        def backward():
            layer.zero_grad(set_to_none=True)
            layer(x).backward(d)

        with torch.no_grad():
            forward_ms = cpu_ms(lambda: layer(x))
        out[f"{name} forward"] = forward_ms
        out[f"{name} backward"] = cpu_ms(backward) - cpu_ms(lambda: layer(x))  # minus the forward it repeats
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1):
            print(json.dumps(ours() if args.worker == "ours" else torch_side()))
        return
    from bench import blas  # the project's modules, which a torch-only venv lacks
    from bench.bench_notebooks import torch_python
    python = torch_python()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    results = {"ours": [], "torch": []}
    for _ in range(args.rounds):
        for side, exe in (("ours", sys.executable), ("torch", python)):
            if exe:
                out = subprocess.run([exe, "-m", "bench.bench_conv", "--worker", side], env=env, check=True,
                                     capture_output=True, text=True).stdout
                results[side].append(json.loads(out.strip().splitlines()[-1]))
    if not python:
        print("PyTorch is not installed: its column is left out (see bench/bench_notebooks.py)")
    print(blas.describe())
    print(f"LeNet-5's conv and pool layers, batch {BATCH}, 1 BLAS thread, CPU ms per batch, "
          f"median of {args.rounds} rounds")
    print(f"  {'':<36}{'ours':>8}{'PyTorch':>9}{'ours/PT':>9}")
    totals = {"ours": 0.0, "torch": 0.0}
    for key in results["ours"][0]:
        a = statistics.median(r[key] for r in results["ours"])
        b = statistics.median(r[key] for r in results["torch"]) if results["torch"] and key in results["torch"][0] \
            else None
        if b is not None:
            totals["ours"], totals["torch"] = totals["ours"] + a, totals["torch"] + b
        print(f"  {key:<36}{a:>8.3f}" + (f"{b:>9.3f}{a / b:>9.2f}" if b is not None else ""))
    if results["torch"]:
        print(f"  {'all four layers, both passes':<36}{totals['ours']:>8.3f}{totals['torch']:>9.3f}"
              f"{totals['ours'] / totals['torch']:>9.2f}")


if __name__ == "__main__":
    main()
