"""SimCLR view augmentations, batched on the training device (kornia).

Each sample in a batch gets its own random parameters, so one call makes a whole batch of
views on the GPU without a DataLoader. Input and output are float images in [0, 1],
shape (B, C, H, W).

Policies (chosen by `pretrain.augment.policy`; `auto` picks by dataset):
- `digits`: crops and small affine warps; no flips (a flipped 2 is not a 2) and no colour.
- `grayscale`: crops and horizontal flips, for clothing-like grey images (Fashion-MNIST).
- `simclr`: SimCLR's crop, flip, colour jitter and random grayscale (Chen et al. 2020),
  for natural images (CIFAR, STL-10).
"""

from __future__ import annotations

import kornia.augmentation as K
from torch import nn

AUTO_POLICY = {
    "digits": "digits",
    "mnist": "digits",
    "fashion_mnist": "grayscale",
    "cifar10": "simclr",
    "cifar100_20": "simclr",
    "stl10": "simclr",
}

DEFAULT_CROP_MIN_SCALE = {"digits": 0.5, "grayscale": 0.3, "simclr": 0.2}


def _digits(size: int, crop_min_scale: float) -> list[nn.Module]:
    return [
        K.RandomResizedCrop((size, size), scale=(crop_min_scale, 1.0), ratio=(0.8, 1.25)),
        K.RandomAffine(degrees=15.0, translate=(0.1, 0.1), p=0.8),
    ]


def _grayscale(size: int, crop_min_scale: float) -> list[nn.Module]:
    return [
        K.RandomResizedCrop((size, size), scale=(crop_min_scale, 1.0)),
        K.RandomHorizontalFlip(),
    ]


def _simclr(size: int, crop_min_scale: float) -> list[nn.Module]:
    return [
        K.RandomResizedCrop((size, size), scale=(crop_min_scale, 1.0)),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
    ]


POLICIES = {"digits": _digits, "grayscale": _grayscale, "simclr": _simclr}


def resolve_policy(policy: str, dataset: str, channels: int) -> str:
    """The policy `auto` stands for; `simclr` on grayscale images is refused (params
    validation says so first: colour jitter and random grayscale need RGB)."""
    name = AUTO_POLICY[dataset] if policy == "auto" else policy
    if name == "simclr" and channels != 3:
        raise ValueError(f"augmentation policy simclr needs RGB images, got {channels} channel(s)")
    return name


def build_view_augment(
    policy: str, dataset: str, image_size: int, channels: int, crop_min_scale: float | None
) -> nn.Module:
    """One random view per image: an nn.Module mapping (B,C,H,W) in [0,1] to the same."""
    name = resolve_policy(policy, dataset, channels)
    scale = DEFAULT_CROP_MIN_SCALE[name] if crop_min_scale is None else crop_min_scale
    return nn.Sequential(*POLICIES[name](image_size, scale))
