"""The Chinese edition runs under nbval only when named (pytest --nbval notebooks/zh), not as part of
`pytest --nbval notebooks`: make test keeps its time budget, and the English notebooks stay its pipeline."""
from pathlib import Path

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path, config):
    named = any(Path(arg.split("::")[0]).resolve().is_relative_to(HERE) for arg in config.args)
    return None if named else collection_path.suffix == ".ipynb"
