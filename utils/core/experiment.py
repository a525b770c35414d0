"""An experiment config made real: its data set loaded and prepared, its model built, and the
record a checkpoint keeps of both.

    cfg = load_config("mlp_fashion")          # utils.plumbing.config
    data = load_data(cfg)
    model = build_model(cfg, data)
"""
import math

from utils.core.models import lenet5, mlp
from utils.core.prepared import prepare
from utils.core.preprocess import mirrored_copies
from utils.plumbing.errors import ConfigError


def load_data(cfg, data_dir=None, include_test=False):
    """The data set the config names, split and standardised (see utils.core.prepared.prepare).

    Images are flat rows for an MLP and (N, C, H, W) for LeNet-5; with augment = "mirror"
    the training set also holds a mirrored copy of every image. The training and validation
    splits only: X_test and y_test only with include_test=True, for a final test of a finished
    model (python -m utils evaluate reads the test split on its own).
    """
    d = cfg["data"]
    data = prepare(d["dataset"], val_size=d["val_size"], seed=cfg["seed"],
                   flat=cfg["model"]["builder"] == "mlp", data_dir=data_dir, include_test=include_test)
    if d["augment"] == "mirror":
        data["X_train"], data["y_train"] = mirrored_copies(data["X_train"], data["y_train"], data["image_shape"])
    return data


def build_model(cfg, data=None, *, image_shape=None, num_classes=None):
    """The model the config describes, freshly initialised with the config's seed.

    Sizes come from the data: data["image_shape"] (e.g. (1, 28, 28)) and data["num_classes"].
    """
    image_shape = tuple(image_shape or data["image_shape"])
    num_classes = int(num_classes or data["num_classes"])
    m = cfg["model"]
    if m["builder"] == "lenet5":
        if image_shape[1] != image_shape[2]:
            raise ConfigError(f"lenet5 needs square images, got {image_shape}")
        return lenet5(in_channels=image_shape[0], image_size=image_shape[1], num_classes=num_classes,
                      rng=cfg["seed"], dropout=m.get("dropout", 0.0))
    return mlp([math.prod(image_shape), *m["hidden_sizes"], num_classes], m["activation"],
               dropout=m["dropout"], rng=cfg["seed"])


def experiment_metadata(cfg, data):
    """What a checkpoint records besides the weights: the experiment and how its inputs were scaled."""
    return {"experiment": cfg, "dataset": cfg["data"]["dataset"], "mean": data["mean"], "std": data["std"],
            "image_shape": list(data["image_shape"]), "class_names": list(data["class_names"])}
