"""A full-size synthetic CIFAR-10 in the official binary format, for running the notebooks offline.

    python tests/cifar_fake.py /tmp/nn-data      # writes /tmp/nn-data/cifar10/*.bin
    DATASET=cifar10 NN_DATA_DIR=/tmp/nn-data jupyter nbconvert --execute ... notebooks/01_....ipynb

Six files (data_batch_1..5.bin, test_batch.bin) of 10,000 records each: one label byte, then
3,072 pixel bytes (the red, green and blue 32x32 planes). Every file holds 1,000 images of
each class in a shuffled order; the pixels are random bytes, so a model trained on them
scores about 10% (chance), and nothing else about the pipeline changes.
"""
import sys
from pathlib import Path

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
PER_FILE, PIXELS = 10000, 3 * 32 * 32


def batch_bytes(rng):
    """One batch file's bytes: PER_FILE records of (label, pixels)."""
    labels = rng.permutation(np.repeat(np.arange(len(CLASSES), dtype=np.uint8), PER_FILE // len(CLASSES)))
    records = np.empty((PER_FILE, 1 + PIXELS), dtype=np.uint8)
    records[:, 0] = labels
    records[:, 1:] = rng.integers(0, 256, size=(PER_FILE, PIXELS), dtype=np.uint8)
    return records.tobytes()


def write_fake_cifar10(data_dir, seed=0):
    """Write the six batches and batches.meta.txt into data_dir/cifar10/; returns that folder."""
    folder = Path(data_dir) / "cifar10"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in FILES:
        (folder / name).write_bytes(batch_bytes(rng))
    (folder / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n")
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/cifar_fake.py DATA_DIR   (writes DATA_DIR/cifar10/)")
    print(f"wrote {write_fake_cifar10(sys.argv[1])}")
