"""Where the project keeps its files.

Every path can be moved with an environment variable, so that the tests can run
the notebooks against temporary folders without touching tracked files.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("NN_DATA_DIR", ROOT / "data"))
LOG_DIR = Path(os.environ.get("NN_LOG_DIR", ROOT / "log"))
STATIC_DIR = Path(os.environ.get("NN_STATIC_DIR", ROOT / "static"))


def log_dir():
    """LOG_DIR as the environment says now (NN_LOG_DIR), not as it said at import."""
    return Path(os.environ.get("NN_LOG_DIR", ROOT / "log"))


def static_dir():
    return Path(os.environ.get("NN_STATIC_DIR", ROOT / "static"))


def data_dir():
    return Path(os.environ.get("NN_DATA_DIR", ROOT / "data"))
