"""What the command lines share: run folders that never overwrite results, and errors without tracebacks.

    python -m utils.train    [--config FILE] [--set KEY=VALUE ...] [--out DIR] [--overwrite] [--resume]
    python -m utils.evaluate CHECKPOINT [--figures DIR]
    python -m utils.search   [--config FILE] ...
"""
import argparse
import sys
import time
from pathlib import Path

from utils import paths


def run_folder(name, out=None):
    """out if given, else a new folder log/runs/<name>-<YYYYmmdd-HHMMSS> (never an existing one)."""
    if out is not None:
        return Path(out)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = paths.log_dir() / "runs" / f"{name}-{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = folder.with_name(f"{name}-{stamp}-{n}")
    return folder


def refuse_overwrite(path, flag="--overwrite"):
    """Raise FileExistsError naming path and the flag that allows replacing it."""
    if Path(path).exists():
        raise FileExistsError(f"{path} exists and would be replaced; pass {flag} to replace it, "
                              f"or choose another folder with --out")


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default, except None: there the help text says what leaving it out means."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def parser(description, epilog=None):
    return argparse.ArgumentParser(description=description, epilog=epilog, formatter_class=_ShowDefaults)


def run(main, argv=None):
    """Call main(argv); print a ValueError or OSError as one line on stderr and exit 1, without a traceback."""
    try:
        return main(argv)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def train_main(argv=None):
    run(_train, argv)


def _train(argv):
    from threadpoolctl import threadpool_limits

    from utils.checkpoint import atomic_write
    from utils.config import DEFAULT_EXPERIMENT, build_model, describe, load_config, load_data, parse_assignments
    from utils.train import evaluate, train

    p = parser("Train the model an experiment config describes; print its history and test accuracy.",
               epilog="The checkpoint records the whole experiment, so python -m utils.evaluate CHECKPOINT "
                      "can test it later. Nothing is replaced unless --overwrite (or --resume) is given.")
    p.add_argument("--config", default=DEFAULT_EXPERIMENT, help="experiment config: a name in configs/ or a path")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="change the config, e.g. --set lr=0.01 num_epochs=5 model.hidden_sizes=[256,128]")
    p.add_argument("--out", help="output folder (default: a new log/runs/<name>-<time>/); "
                                 "--out log/ writes where the notebooks read")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint in the output folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads; 1 gives the same result on any machine of the same kind")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    cfg = load_config(a.config, parse_assignments(a.set))
    if a.resume and a.out is None:
        raise ValueError("--resume needs --out, the folder of the run to continue")
    out = run_folder(cfg["name"], a.out)
    checkpoint = out / cfg["checkpoint"]
    if not (a.overwrite or a.resume):
        refuse_overwrite(checkpoint)
    print(f"{cfg['name']}: {describe(cfg)}")
    data = load_data(cfg)
    model = build_model(cfg, data)
    with threadpool_limits(limits=a.threads, user_api="blas"):
        history = train(model, data["X_train"], data["y_train"], data["X_val"], data["y_val"],
                        checkpoint_path=checkpoint, resume=a.resume, progress=not a.quiet, seed=cfg["seed"],
                        metadata=experiment_metadata(cfg, data), **cfg["train"])
        test_loss, test_acc = evaluate(model, data["X_test"], data["y_test"])
    with atomic_write(checkpoint.with_suffix(".history.csv"), "w") as f:
        history.to_csv(f, index=False)
    print(history.round(4).to_string(index=False))
    best = history.loc[history.val_acc.idxmax()]
    print(f"best epoch {int(best.epoch)}: validation accuracy {best.val_acc:.4f} (weights saved to {checkpoint})")
    print(f"test loss {test_loss:.4f}, test accuracy {test_acc:.4f} "
          f"({round(test_acc * len(data['y_test']))} of {len(data['y_test'])})")


def experiment_metadata(cfg, data):
    """What a checkpoint records besides the weights: the experiment and how its inputs were scaled."""
    return {"experiment": cfg, "dataset": cfg["data"]["dataset"], "mean": data["mean"], "std": data["std"],
            "image_shape": list(data["image_shape"]), "class_names": list(data["class_names"])}
