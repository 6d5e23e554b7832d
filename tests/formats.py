"""Writers for tiny datasets in each official on-disk format (used by the tests only)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def write_mnist_family(folder: Path, n_train: int = 20, n_test: int = 10, seed: int = 0, compress=True):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, compress)
        arrays[prefix] = (images, labels)
    return arrays


def _pickle(path: Path, obj) -> None:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)


def write_cifar10(folder: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0):
    """cifar-10-batches-py layout: data_batch_1..5, test_batch, batches.meta (bytes keys)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = []
    for i in range(1, 6):
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        rows = images.transpose(0, 3, 1, 2).reshape(per_batch, -1)  # CHW rows, as shipped
        _pickle(folder / f"data_batch_{i}", {b"data": rows, b"labels": labels})
        batches.append((images, labels))
    test_images = rng.integers(0, 256, size=(n_test, 32, 32, 3), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=n_test).tolist()
    _pickle(folder / "test_batch", {b"data": test_images.transpose(0, 3, 1, 2).reshape(n_test, -1), b"labels": test_labels})
    names = [f"class{i}".encode() for i in range(10)]
    _pickle(folder / "batches.meta", {b"label_names": names})
    return batches, (test_images, test_labels)


def write_cifar100(folder: Path, n_train: int = 8, n_test: int = 4, seed: int = 0):
    """cifar-100-python layout: train, test, meta with fine and coarse labels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        coarse = rng.integers(0, 20, size=n).tolist()
        fine = rng.integers(0, 100, size=n).tolist()
        rows = images.transpose(0, 3, 1, 2).reshape(n, -1)
        _pickle(folder / name, {b"data": rows, b"fine_labels": fine, b"coarse_labels": coarse})
        out[name] = (images, coarse)
    _pickle(folder / "meta", {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"super{i}".encode() for i in range(20)],
    })
    return out


def write_stl10(folder: Path, n_train: int = 3, n_test: int = 2, n_unlabeled: int = 2, seed: int = 0):
    """stl10_binary layout: *_X.bin column-major (N, 3, 96, 96) uint8, *_y.bin labels 1..10."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        images = rng.integers(0, 256, size=(n, 96, 96, 3), dtype=np.uint8)
        # (N, H, W, C) -> stored as (N, C, W, H) in C order, i.e. column-major per channel.
        images.transpose(0, 3, 2, 1).tofile(folder / f"{name}_X.bin")
        labels = None
        if name != "unlabeled":
            labels = rng.integers(1, 11, size=n).astype(np.uint8)
            labels.tofile(folder / f"{name}_y.bin")
        out[name] = (images, labels)
    (folder / "class_names.txt").write_text(
        "\n".join(["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]) + "\n"
    )
    return out
