"""Facts about each dataset that params validation needs before any file is read."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetFacts:
    native_size: int  # side of the square images as distributed
    channels: int  # 1 = grayscale, 3 = RGB
    n_train: int  # labelled train images (digits: the whole set, split by data.test_fraction)
    n_test: int
    n_classes: int


DATASETS: dict[str, DatasetFacts] = {
    "digits": DatasetFacts(native_size=8, channels=1, n_train=1797, n_test=0, n_classes=10),
    "mnist": DatasetFacts(native_size=28, channels=1, n_train=60000, n_test=10000, n_classes=10),
    "fashion_mnist": DatasetFacts(native_size=28, channels=1, n_train=60000, n_test=10000, n_classes=10),
    "cifar10": DatasetFacts(native_size=32, channels=3, n_train=50000, n_test=10000, n_classes=10),
    "cifar100_20": DatasetFacts(native_size=32, channels=3, n_train=50000, n_test=10000, n_classes=20),
    "stl10": DatasetFacts(native_size=96, channels=3, n_train=5000, n_test=8000, n_classes=10),
}

# A user's own folder of images (data.dataset image_folder): its size, channels, image count
# and classes are known only once the data stage has read it.
IMAGE_FOLDER = "image_folder"


def image_channels(dataset: str, channels: int | None) -> int:
    """Channels the pipeline sees: a built-in dataset's own, or data.channels (default RGB)
    for an image folder."""
    if dataset == IMAGE_FOLDER:
        return 3 if channels is None else channels
    return DATASETS[dataset].channels


def max_train_images(dataset: str, protocol: str, test_fraction: float, imbalance_remove=None) -> int | None:
    """An upper bound on the train images the `data` stage will write (the official sizes,
    after the digits split, `train+test` and the least removal of `data.imbalance_remove`);
    None for an image folder, which only the data stage counts."""
    if dataset == IMAGE_FOLDER:
        return None
    facts = DATASETS[dataset]
    if dataset == "digits":
        test = math.ceil(facts.n_train * test_fraction)  # scikit-learn's train_test_split rounds up
        train = facts.n_train - test
    else:
        train, test = facts.n_train, facts.n_test
    if imbalance_remove:
        train = math.floor(train * (1.0 - min(imbalance_remove)))
    return train + test if protocol == "train+test" else train
