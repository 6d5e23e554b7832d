"""Readers for each dataset's official on-disk format, and where to find those files.

Every reader returns images as uint8 arrays of shape (N, H, W, C) and labels as int64
(N,), so that `prepare.py` can write one uniform format whatever the source.

Formats:
- IDX (MNIST, Fashion-MNIST): big-endian header, optionally gzip-compressed.
- CIFAR-10 / CIFAR-100 "python version": pickled dicts of (N, 3072) row-major CHW rows.
- STL-10 "binary version": raw uint8 (N, 3, 96, 96) stored column-major per image.
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gccluster.errors import UserError


@dataclass(frozen=True)
class RawSplit:
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int64 (N,); -1 everywhere for an unlabelled image folder
    # An image folder's file of each image (path relative to the folder); None for the
    # built-in datasets, whose images are known by split and index.
    files: np.ndarray | None = None


@dataclass(frozen=True)
class RawDataset:
    train: RawSplit
    test: RawSplit
    class_names: list[str]
    # Images with no class that only pretraining sees (STL-10's 100k unlabelled images).
    unlabeled: np.ndarray | None = None


# ---------------------------------------------------------------------------- IDX


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or .gz), the format of the MNIST family."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            payload = handle.read()
    except (OSError, EOFError) as err:
        raise UserError(f"{path}: cannot read IDX file ({err})") from None
    if len(payload) < 4 or payload[0] != 0 or payload[1] != 0 or payload[2] not in _IDX_DTYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number)")
    ndim = payload[3]
    header_end = 4 + 4 * ndim
    shape = tuple(int.from_bytes(payload[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[payload[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(payload) - header_end != expected:
        raise UserError(
            f"{path}: truncated or corrupt IDX file (header says {shape}, "
            f"{expected} bytes of data, found {len(payload) - header_end})"
        )
    return np.frombuffer(payload, dtype=dtype, offset=header_end).reshape(shape)


def _find_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(f"{folder}: missing {stem} (or {stem}.gz)")


def read_mnist_family(folder: Path, class_names: list[str]) -> RawDataset:
    def split(prefix: str) -> RawSplit:
        images = read_idx(_find_file(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find_file(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(
                f"{folder}: {prefix} images {images.shape} and labels {labels.shape} do not match"
            )
        return RawSplit(images[..., None].copy(), labels.astype(np.int64))

    return RawDataset(split("train"), split("t10k"), class_names)


# -------------------------------------------------------------------------- CIFAR


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path.parent}: missing {path.name}")
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="bytes")
    except Exception as err:  # pickle raises many types on corrupt input
        raise UserError(f"{path}: not a readable CIFAR pickle ({type(err).__name__})") from None


def _cifar_rows_to_images(rows: np.ndarray, path: Path) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.uint8)
    if rows.ndim != 2 or rows.shape[1] != 3 * 32 * 32:
        raise UserError(f"{path}: expected rows of 3072 bytes, got shape {rows.shape}")
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def _cifar_split(paths: list[Path], label_key: bytes) -> RawSplit:
    images, labels = [], []
    for path in paths:
        batch = _unpickle(path)
        if b"data" not in batch or label_key not in batch:
            raise UserError(f"{path}: CIFAR pickle without {label_key.decode()!r} or 'data'")
        images.append(_cifar_rows_to_images(batch[b"data"], path))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
        if len(images[-1]) != len(labels[-1]):
            raise UserError(f"{path}: {len(images[-1])} images but {len(labels[-1])} labels")
    return RawSplit(np.concatenate(images), np.concatenate(labels))


def read_cifar10(folder: Path) -> RawDataset:
    train = _cifar_split([folder / f"data_batch_{i}" for i in range(1, 6)], b"labels")
    test = _cifar_split([folder / "test_batch"], b"labels")
    meta = _unpickle(folder / "batches.meta")
    names = [name.decode() for name in meta[b"label_names"]]
    return RawDataset(train, test, names)


def read_cifar100_20(folder: Path) -> RawDataset:
    """CIFAR-100 with its 20 coarse superclasses as labels (the clustering benchmark)."""
    train = _cifar_split([folder / "train"], b"coarse_labels")
    test = _cifar_split([folder / "test"], b"coarse_labels")
    meta = _unpickle(folder / "meta")
    names = [name.decode() for name in meta[b"coarse_label_names"]]
    return RawDataset(train, test, names)


# ------------------------------------------------------------------------- STL-10

STL10_SIDE = 96


def read_stl10_images(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path.parent}: missing {path.name}")
    raw = np.fromfile(path, dtype=np.uint8)
    per_image = 3 * STL10_SIDE * STL10_SIDE
    if raw.size == 0 or raw.size % per_image:
        raise UserError(f"{path}: size {raw.size} is not a whole number of 96x96x3 images")
    # Each image is stored channel by channel, column-major: (C, W, H) -> (H, W, C).
    return raw.reshape(-1, 3, STL10_SIDE, STL10_SIDE).transpose(0, 3, 2, 1).copy()


def read_stl10_labels(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path.parent}: missing {path.name}")
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1  # stored as 1..10
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise UserError(f"{path}: labels outside 1..10")
    return labels


def read_stl10(folder: Path, unlabeled: bool = False) -> RawDataset:
    def split(name: str) -> RawSplit:
        images = read_stl10_images(folder / f"{name}_X.bin")
        labels = read_stl10_labels(folder / f"{name}_y.bin")
        if len(images) != len(labels):
            raise UserError(f"{folder}: {name} has {len(images)} images but {len(labels)} labels")
        return RawSplit(images, labels)

    extra = read_stl10_images(folder / "unlabeled_X.bin") if unlabeled else None
    names_file = folder / "class_names.txt"
    names = names_file.read_text().split() if names_file.is_file() else STL10_CLASSES
    return RawDataset(split("train"), split("test"), names, unlabeled=extra)


# --------------------------------------------------------------------- registry

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
STL10_CLASSES = [
    "airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck",
]  # fmt: skip


@dataclass(frozen=True)
class FileSource:
    """A dataset distributed as official files, and where they may be found."""

    # Sub-folders, relative to a searched root, that hold the files; "" is the root itself.
    # The torchvision layout comes first so `data_root` works after a torchvision download.
    subdirs: tuple[str, ...]
    marker: str  # a file whose presence identifies the folder
    read: Callable[..., RawDataset]
    download: Callable[[Path], None]
    system_dirs: tuple[str, ...] = ()


def _torchvision_download(cls_name: str, **kwargs) -> Callable[[Path], None]:
    def download(root: Path) -> None:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        try:
            cls(root=str(root), download=True, **kwargs)
        except Exception as err:  # network errors come in many types
            raise UserError(
                f"could not download {cls_name} into {root} ({type(err).__name__}: {err}); "
                "put the official files in a folder and set data.local_dir"
            ) from None

    return download


FILE_SOURCES: dict[str, FileSource] = {
    "mnist": FileSource(
        subdirs=("MNIST/raw", ""),
        marker="train-images-idx3-ubyte",
        read=lambda folder, **_: read_mnist_family(folder, MNIST_CLASSES),
        download=_torchvision_download("MNIST"),
    ),
    "fashion_mnist": FileSource(
        subdirs=("FashionMNIST/raw", ""),
        marker="train-images-idx3-ubyte",
        read=lambda folder, **_: read_mnist_family(folder, FASHION_MNIST_CLASSES),
        download=_torchvision_download("FashionMNIST"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian: dataset-fashion-mnist
    ),
    "cifar10": FileSource(
        subdirs=("cifar-10-batches-py", ""),
        marker="data_batch_1",
        read=lambda folder, **_: read_cifar10(folder),
        download=_torchvision_download("CIFAR10"),
    ),
    "cifar100_20": FileSource(
        subdirs=("cifar-100-python", ""),
        marker="train",
        read=lambda folder, **_: read_cifar100_20(folder),
        download=_torchvision_download("CIFAR100"),
    ),
    "stl10": FileSource(
        subdirs=("stl10_binary", ""),
        marker="train_X.bin",
        read=lambda folder, unlabeled=False, **_: read_stl10(folder, unlabeled=unlabeled),
        download=_torchvision_download("STL10", split="train"),
    ),
}


def find_dataset_folder(source: FileSource, roots: list[Path]) -> Path | None:
    """The first folder under `roots` that holds the dataset's marker file (plain or .gz)."""
    for root in roots:
        for sub in source.subdirs:
            folder = root / sub if sub else root
            if (folder / source.marker).is_file() or (folder / f"{source.marker}.gz").is_file():
                return folder
    return None
