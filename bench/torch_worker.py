"""PyTorch's side of the notebook benchmark: the same network and settings, timed the same way.

Run by bench.bench_notebooks with any Python that has torch (a throwaway venv is enough:
PyTorch is no requirement of this project), so it imports only NumPy, threadpoolctl and
torch, never the project:

    python bench/torch_worker.py FOLDER SPEC_JSON

FOLDER holds the notebook's prepared arrays (X_train.npy, y_train.npy, X_val.npy, y_val.npy);
SPEC_JSON: {"model": "mlp"|"lenet5", "sizes": [...], "dropout": p, "optimizer": "sgd"|"adam",
"lr", "momentum", "nesterov", "l2_lambda", "lr_schedule": "constant"|"cosine", "num_epochs",
"batch_size", "epochs": epochs to time, "threads"}. L2 is weight_decay on the weights only
(biases in a group without it), as this project's L2; the cosine schedule is set every step
from the same formula. Prints one JSON line: wall and CPU seconds of each epoch, each one
training pass and the validation pass (eval mode, no_grad, chunks of 1,024), like train().
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn


def build(spec):
    torch.manual_seed(0)
    if spec["model"] == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    layers, sizes = [], spec["sizes"]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if spec["dropout"]:
                layers.append(nn.Dropout(spec["dropout"]))
    return nn.Sequential(*layers)


def optimiser(model, spec):
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    groups = [{"params": weights, "weight_decay": spec["l2_lambda"]}, {"params": biases, "weight_decay": 0.0}]
    if spec["optimizer"] == "adam":
        return torch.optim.Adam(groups, lr=spec["lr"])
    return torch.optim.SGD(groups, lr=spec["lr"], momentum=spec["momentum"], nesterov=spec["nesterov"])


def main():
    folder, spec = Path(sys.argv[1]), json.loads(sys.argv[2])
    torch.set_num_threads(spec["threads"])
    X, y, X_val, y_val = (torch.from_numpy(np.load(folder / f"{k}.npy"))
                          for k in ("X_train", "y_train", "X_val", "y_val"))
    model, batch_size = build(spec), spec["batch_size"]
    opt, loss_fn = optimiser(model, spec), nn.CrossEntropyLoss()
    total = math.ceil(len(X) / batch_size) * spec["num_epochs"]
    gen, wall, cpu, it = torch.Generator().manual_seed(0), [], [], 0
    with threadpool_limits(spec["threads"]):
        for _ in range(spec["epochs"]):
            start, start_cpu = time.perf_counter(), time.process_time()
            model.train()
            order = torch.randperm(len(X), generator=gen)
            for first in range(0, len(X), batch_size):
                if spec["lr_schedule"] == "cosine":
                    for group in opt.param_groups:
                        group["lr"] = spec["lr"] * (1 + math.cos(math.pi * min(it, total) / total)) / 2
                idx = order[first:first + batch_size]
                opt.zero_grad(set_to_none=True)
                loss_fn(model(X[idx]), y[idx]).backward()
                opt.step()
                it += 1
            model.eval()
            with torch.no_grad():
                correct = sum(int((model(X_val[i:i + 1024]).argmax(1) == y_val[i:i + 1024]).sum())
                              for i in range(0, len(X_val), 1024))
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    print(json.dumps({"seconds": wall, "cpu": cpu, "val_acc": correct / len(X_val)}))


if __name__ == "__main__":
    main()
