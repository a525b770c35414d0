"""Test set-up shared by the unit tests and the notebooks run under nbval.

module.py and utils/ live at the top level, so the project root goes on sys.path.
The tests, and the notebook kernels nbval starts (they inherit the environment),
write to temporary copies of log/ and static/, so running the tests never changes
a tracked file.
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    tmp = Path(tempfile.mkdtemp(prefix="nn-tests-"))
    config._nn_tmp = tmp
    for variable, folder in (("NN_LOG_DIR", ROOT / "log"), ("NN_STATIC_DIR", ROOT / "static")):
        if variable not in os.environ:
            copy = tmp / folder.name
            if folder.is_dir():
                shutil.copytree(folder, copy)
            else:
                copy.mkdir()
            os.environ[variable] = str(copy)


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_nn_tmp", ""), ignore_errors=True)
