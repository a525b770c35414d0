"""The README is true to the code: its Python runs as written, its config quote is the file, its links exist."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from utils.__main__ import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(text, language):
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def test_the_config_quoted_is_the_file():
    quoted = blocks(README, "toml")
    assert quoted and quoted[0] == (ROOT / "configs" / "mlp_fashion.toml").read_text()


@pytest.mark.parametrize("index", range(len(blocks(README, "python"))))
def test_every_python_block_runs_as_written(index, tmp_path, fashion_raw):
    """Run in a temporary folder, so whatever a block writes (log/runs/...) lands there."""
    code = blocks(README, "python")[index]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]


def test_every_command_named_in_a_bash_block_exists():
    for block in blocks(README, "bash"):
        for module, command in re.findall(r"python -m ([\w.]+)(?: (\w+))?", block):
            assert module == "utils" and command in COMMANDS, f"python -m {module} {command}"
        for target in re.findall(r"^(?:\S+=\S+ )*make (\w[\w-]*)", block, re.M):
            assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.M), target


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_every_linked_file_exists(readme):
    if not (ROOT / readme).exists():
        pytest.fail(f"{readme} is missing")
    text = (ROOT / readme).read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"{readme} links {target}, which does not exist"
