"""The toy data of the doctor's tests: Gaussian clusters the networks learn and overfit quickly."""
import numpy as np

C, D = 4, 30  # classes, input dimensions


def gaussian_clusters(n=400, seed=0):
    """(X (n, D) float32 standardised, y (n,)): C Gaussian clusters in D dimensions, in random order."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    X = rng.standard_normal((C, D))[y] * 0.7 + rng.standard_normal((n, D))
    return ((X - X.mean()) / X.std()).astype(np.float32), y
