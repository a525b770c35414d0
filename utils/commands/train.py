"""python -m utils train: train the model an experiment config describes.

    python -m utils train                                              # configs/mlp_fashion.toml
    python -m utils train --config configs/lenet5_fashion.toml --set num_epochs=2
"""
from threadpoolctl import threadpool_limits

from utils.core.experiment import build_model, experiment_metadata, load_data
from utils.core.train import check_resumable, train
from utils.plumbing.cli import check_at_least, parser, refuse_overwrite, run, run_folder
from utils.plumbing.config import DEFAULT_EXPERIMENT, describe, load_config, parse_assignments
from utils.plumbing.files import atomic_write
from utils.plumbing.language import _


def main(argv=None):
    return run(_train, argv)


def _train(argv):
    p = parser("python -m utils train",
               _("Train the model an experiment config describes; print its history and best validation "
                 "accuracy (never the test set's: that is read once, by python -m utils evaluate)."),
               epilog=_("The checkpoint records the whole experiment, so python -m utils evaluate CHECKPOINT "
                        "tests it once the model is chosen. Nothing is replaced unless --overwrite (or --resume) "
                        "is given."))
    p.add_argument("--config", default=DEFAULT_EXPERIMENT, help=_("experiment config: a name in configs/ or a path"))
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help=_("change the config, e.g. --set lr=0.01 num_epochs=5 model.hidden_sizes=[256,128]"))
    p.add_argument("--out", help=_("output folder (default: a new log/runs/<name>-<time>/); "
                                   "--out log/ writes where the notebooks read"))
    p.add_argument("--overwrite", action="store_true",
                   help=_("replace an existing checkpoint in the output folder"))
    p.add_argument("--resume", action="store_true", help=_("continue the run in --out from its last epoch"))
    p.add_argument("--threads", type=int, default=1,
                   help=_("BLAS threads; 1 gives the same result on any machine of the same kind"))
    p.add_argument("--quiet", action="store_true", help=_("no progress bar"))
    a = p.parse_args(argv)
    check_at_least("--threads", a.threads)
    cfg = load_config(a.config, parse_assignments(a.set))
    if a.resume and a.out is None:
        raise ValueError(_("--resume needs --out, the folder of the run to continue"))
    out = run_folder(cfg["name"], a.out)
    checkpoint = out / cfg["checkpoint"]
    if a.resume:
        check_resumable(checkpoint)  # else a fresh run would replace the checkpoint and its history
    elif not a.overwrite:
        refuse_overwrite(checkpoint)
    print(_("{name}: {description}").format(name=cfg["name"], description=describe(cfg)))
    data = load_data(cfg)  # training and validation splits only: tuning must not see the test set
    model = build_model(cfg, data)
    with threadpool_limits(limits=a.threads, user_api="blas"):
        history = train(model, data["X_train"], data["y_train"], data["X_val"], data["y_val"],
                        checkpoint_path=checkpoint, resume=a.resume, progress=not a.quiet, seed=cfg["seed"],
                        metadata=experiment_metadata(cfg, data), **cfg["train"])
    with atomic_write(checkpoint.with_suffix(".history.csv"), "w") as f:
        history.to_csv(f, index=False)
    print(history.round(4).to_string(index=False))
    best = history.loc[history.val_acc.idxmax()]
    print(_("best epoch {epoch}: validation loss {loss:.4f}, validation accuracy {acc:.4f} ({right} of {n}); "
            "weights saved to {checkpoint}").format(epoch=int(best.epoch), loss=best.val_loss, acc=best.val_acc,
                                                    right=round(best.val_acc * len(data["y_val"])),
                                                    n=len(data["y_val"]), checkpoint=checkpoint))
    print(_("compare runs by validation accuracy; test the one you keep, once: python -m utils evaluate "
            "{checkpoint}").format(checkpoint=checkpoint))


