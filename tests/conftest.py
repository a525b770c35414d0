"""Fixtures shared by the test files."""
import pytest


@pytest.fixture(scope="session")
def fashion_raw():
    """The real Fashion-MNIST training set, uint8 (60000, 28, 28) and labels; skipped where it is missing."""
    from utils.core.datasets import load_fashion_mnist
    try:
        (X, y), _ = load_fashion_mnist()
    except (FileNotFoundError, OSError) as e:
        pytest.skip(f"Fashion-MNIST is not available here ({e}); run `python -m utils data`")
    return X, y
