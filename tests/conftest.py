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


@pytest.fixture
def zh(monkeypatch):
    """The reader's language is Chinese for this test (NN_LANG=zh), as in the Chinese notebooks."""
    monkeypatch.setenv("NN_LANG", "zh")


@pytest.fixture
def en(monkeypatch):
    """The reader's language is English for this test, whatever the machine's locale."""
    monkeypatch.setenv("NN_LANG", "en")
