"""Shared fixtures of nuq's Python tests. Under CI=true a missing dependency fails the run
instead of skipping tests."""

import os
import struct

import numpy as np
import pytest

IN_CI = os.environ.get("CI") == "true"


def require(module: str):
    """Imports ``module``; skips the test when it is missing, except under CI=true."""
    if IN_CI:
        return __import__(module)
    return pytest.importorskip(module)


def write_idx(dir, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Writes MNIST-style IDX files (``{prefix}-images-idx3-ubyte`` and labels)."""
    n, h, w = images.shape
    with open(os.path.join(dir, f"{prefix}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, h, w) + images.astype(np.uint8).tobytes())
    with open(os.path.join(dir, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_dataset(tmp_path):
    """A synthetic 10-class 28×28 dataset (train 512, test 256) whose classes differ in
    brightness pattern, written as IDX files; returns the folder."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 512), ("t10k", 256)):
        labels = rng.integers(0, 10, n)
        base = np.zeros((n, 28, 28))
        for i, l in enumerate(labels):
            base[i, :, l * 2 : l * 2 + 8] = 200
        images = np.clip(base + rng.normal(0, 30, base.shape), 0, 255)
        write_idx(tmp_path, prefix, images, labels)
    return str(tmp_path)
