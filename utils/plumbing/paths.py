"""Where the project keeps its files.

Every path can be moved with an environment variable, so that the tests can run
the notebooks against temporary folders without touching tracked files. The
functions read the environment when called, not once at import, so the order of
imports and of setting the variables does not matter.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def log_dir():
    """LOG_DIR as the environment says now (NN_LOG_DIR), not as it said at import."""
    return Path(os.environ.get("NN_LOG_DIR", ROOT / "log"))


def static_dir():
    """Where the README's figures go (NN_STATIC_DIR, default static/)."""
    return Path(os.environ.get("NN_STATIC_DIR", ROOT / "static"))


def data_dir():
    """Where downloaded and prepared data sets go (NN_DATA_DIR, default data/)."""
    return Path(os.environ.get("NN_DATA_DIR", ROOT / "data"))
