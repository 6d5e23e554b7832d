"""The `data` stage: find or fetch a dataset and write it in the one uniform format.

Uniform format (a folder, `data/prepared`):
- `train.npz`, `test.npz`: `images` uint8 (N, H, W, C), `labels` int64 (N,) (-1 for an
  unlabelled image folder), and for an image folder `files`, each image's path relative to
  the folder;
- `unlabeled.npz` (only with `data.stl10_unlabeled`): `images` that only pretraining sees;
- `meta.json`: dataset name, whether it has labels, class names, image size, channels,
  protocol, where the files came from, the number of images per split, and for an image
  folder the files it skipped, by reason.

Later stages read only this folder and never know where the data came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gccluster.config import DataConfig
from gccluster.data.catalog import DATASETS, IMAGE_FOLDER
from gccluster.data.folder import read_image_folder, split_indices
from gccluster.data.sources import (
    FILE_SOURCES,
    RawDataset,
    RawSplit,
    find_dataset_folder,
)
from gccluster.errors import UserError
from gccluster.io import atomic_dir, read_npz, write_json, write_npz


@dataclass(frozen=True)
class PreparedDataset:
    train: RawSplit
    test: RawSplit
    meta: dict
    # Extra images for the SimCLR pretext only (STL-10's unlabelled split, as SCAN uses it):
    # K-means, the head, the DDPM and the rounds work on `train` alone.
    unlabeled: np.ndarray | None = None

    @property
    def labeled(self) -> bool:
        """Whether ground-truth classes exist (for evaluation only): always for the built-in
        datasets, for an image folder when its images sit in class subfolders."""
        return bool(self.meta.get("labeled", True))

    def pretrain_images(self) -> np.ndarray:
        """What SimCLR trains on: the train split, plus the unlabelled images if any."""
        if self.unlabeled is None:
            return self.train.images
        return np.concatenate([self.train.images, self.unlabeled])


def load_digits_dataset(cfg: DataConfig) -> tuple[RawDataset, str]:
    """scikit-learn's 8x8 digits (values 0..16), split stratified with `data.split_seed`."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)),
        test_size=cfg.test_fraction,
        stratify=labels,
        random_state=cfg.split_seed,
    )
    dataset = RawDataset(
        RawSplit(images[idx_train], labels[idx_train]),
        RawSplit(images[idx_test], labels[idx_test]),
        [str(i) for i in range(10)],
    )
    return dataset, "sklearn.datasets.load_digits"


def locate_files(cfg: DataConfig, data_root: Path) -> Path:
    """Where the dataset's official files are: local_dir, data_root, system folders, download."""
    source = FILE_SOURCES[cfg.dataset]
    if cfg.local_dir is not None:
        local = Path(cfg.local_dir)
        if not local.is_dir():
            raise UserError(f"data.local_dir = {cfg.local_dir!r}: folder does not exist")
        folder = find_dataset_folder(source, [local])
        if folder is None:
            wanted = " or ".join(f"{local / s if s else local}" for s in source.subdirs)
            raise UserError(
                f"data.local_dir = {cfg.local_dir!r}: no {cfg.dataset} files "
                f"(looked for {source.marker} in {wanted})"
            )
        return folder
    roots = [data_root] + [Path(d) for d in source.system_dirs]
    folder = find_dataset_folder(source, roots)
    if folder is not None:
        return folder
    if not cfg.download:
        raise UserError(
            f"no {cfg.dataset} files in {', '.join(map(str, roots))} and data.download = false; "
            "set data.local_dir to the folder with the official files or data.download = true"
        )
    source.download(data_root)
    folder = find_dataset_folder(source, [data_root])
    if folder is None:
        raise UserError(f"download of {cfg.dataset} into {data_root} left no readable files")
    return folder


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear resize of uint8 NHWC images (torchvision's resize)."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
    out = TF.resize(tensor, [size, size], antialias=True)
    return out.permute(0, 2, 3, 1).contiguous().numpy()


def prepare_image_folder(cfg: DataConfig) -> PreparedDataset:
    """A user's folder of images (gccluster.data.folder), split by `data.test_fraction` and
    `data.split_seed` (stratified when it has class subfolders) or, with `train+test`, every
    image in both splits."""
    folder = read_image_folder(cfg.local_dir, cfg.image_size, cfg.resolved_channels(), cfg.max_image_pixels,
                               cfg.folder_labels)
    files = np.array(folder.files)
    labels = folder.labels if folder.labels is not None else np.full(len(files), -1, dtype=np.int64)
    train_idx, test_idx = split_indices(len(files), folder.labels, cfg.test_fraction, cfg.split_seed, cfg.protocol)
    train, test = (RawSplit(folder.images[idx], labels[idx], files[idx]) for idx in (train_idx, test_idx))
    meta = {
        "dataset": IMAGE_FOLDER,
        "labeled": folder.labels is not None,
        "class_names": folder.class_names,
        "n_classes": len(folder.class_names),
        "image_size": cfg.image_size,
        "channels": cfg.resolved_channels(),
        "protocol": cfg.protocol,
        "source": cfg.local_dir,
        "n_train": len(train.labels),
        "n_test": len(test.labels),
        "n_unlabeled": 0,
        "n_files": len(files),
        "skipped": folder.skipped,
    }
    return PreparedDataset(train, test, meta)


def prepare_dataset(cfg: DataConfig, data_root: str | Path) -> PreparedDataset:
    if cfg.dataset == IMAGE_FOLDER:
        return prepare_image_folder(cfg)
    if cfg.dataset == "digits":
        raw, origin = load_digits_dataset(cfg)
    else:
        folder = locate_files(cfg, Path(data_root))
        raw = FILE_SOURCES[cfg.dataset].read(folder, unlabeled=cfg.stl10_unlabeled)
        origin = str(folder)
    native = DATASETS[cfg.dataset].native_size
    size = cfg.image_size or native
    train, test, unlabeled = raw.train, raw.test, raw.unlabeled
    for name, images in (("train", train.images), ("test", test.images), ("unlabeled", unlabeled)):
        if images is not None and images.shape[1:3] != (native, native):
            raise UserError(
                f"{origin}: {name} images are {images.shape[1:3]}, expected {native}x{native} for {cfg.dataset}"
            )
    if size != native:
        train = RawSplit(_resize(train.images, size), train.labels)
        test = RawSplit(_resize(test.images, size), test.labels)
        if unlabeled is not None:
            unlabeled = _resize(unlabeled, size)
    if cfg.imbalance_remove is not None:
        train = remove_per_class(train, cfg.imbalance_remove, cfg.imbalance_seed, len(raw.class_names))
    if cfg.protocol == "train+test":
        both = RawSplit(
            np.concatenate([train.images, test.images]),
            np.concatenate([train.labels, test.labels]),
        )
        train, test = both, both
    meta = {
        "dataset": cfg.dataset,
        "labeled": True,
        "class_names": list(raw.class_names),
        "n_classes": len(raw.class_names),
        "image_size": size,
        "channels": int(train.images.shape[-1]),
        "protocol": cfg.protocol,
        "source": origin,
        "n_train": len(train.labels),
        "n_test": len(test.labels),
        "n_unlabeled": 0 if unlabeled is None else len(unlabeled),
    }
    return PreparedDataset(train, test, meta, unlabeled)


def require_images_for_clusters(data: PreparedDataset, k: int, key: str) -> None:
    """K-means, and every method, needs at least one train image per cluster."""
    if k > data.meta["n_train"]:
        raise UserError(
            f"{key} = {k} exceeds the {data.meta['n_train']} train images of {data.meta['source']} "
            "(allowed: at most one cluster per image; add images or lower it)"
        )


def image_ids(split_name: str, split: RawSplit) -> list[str]:
    """What names each image in the assignments: an image folder's relative paths, or
    `<split>/<index>` for a built-in dataset."""
    if split.files is not None:
        return [str(path) for path in split.files]
    return [f"{split_name}/{i}" for i in range(len(split.images))]


def remove_per_class(split: RawSplit, fractions: tuple[float, ...], seed: int, n_classes: int) -> RawSplit:
    """Drop round(f_k * n_k) randomly chosen images of each class k (the imbalanced study of
    Fig. 2b). Labels are used here only to build the data set, never by training code."""
    if len(fractions) != n_classes:
        raise UserError(
            f"data.imbalance_remove has {len(fractions)} fractions; the dataset has {n_classes} classes"
        )
    rng = np.random.default_rng(seed)
    keep = np.ones(len(split.labels), dtype=bool)
    for k, fraction in enumerate(fractions):
        members = np.flatnonzero(split.labels == k)
        drop = rng.choice(members, size=int(round(fraction * len(members))), replace=False)
        keep[drop] = False
    return RawSplit(split.images[keep], split.labels[keep])


def write_prepared(prepared: PreparedDataset, folder: str | Path) -> None:
    with atomic_dir(folder) as tmp:
        for name, split in (("train", prepared.train), ("test", prepared.test)):
            files = {} if split.files is None else {"files": split.files}
            write_npz(tmp / f"{name}.npz", images=split.images, labels=split.labels, **files)
        if prepared.unlabeled is not None:
            write_npz(tmp / "unlabeled.npz", images=prepared.unlabeled)
        write_json(tmp / "meta.json", prepared.meta)


def load_prepared(folder: str | Path) -> PreparedDataset:
    """Read the uniform format written by `write_prepared`."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise UserError(f"{folder}: no prepared dataset (run the data stage first)")
    meta = json.loads(meta_path.read_text())
    keys = ("images", "labels", "files") if meta.get("dataset") == IMAGE_FOLDER else ("images", "labels")
    splits = [RawSplit(**read_npz(folder / f"{name}.npz", keys, "prepared split")) for name in ("train", "test")]
    unlabeled = None
    if meta.get("n_unlabeled"):
        unlabeled = read_npz(folder / "unlabeled.npz", ("images",), "prepared unlabelled images")["images"]
    return PreparedDataset(splits[0], splits[1], meta, unlabeled)
