"""SimCLR view augmentations, batched on the training device (kornia).

Each sample in a batch gets its own random parameters, so one call makes a whole batch of
views on the GPU without a DataLoader. Input and output are float images in [0, 1],
shape (B, C, H, W).

Policies (chosen by `pretrain.augment.policy`; `auto` picks by dataset), each a geometric
part followed by a photometric part:
- `digits`: crops and small affine warps; no flips (a flipped 2 is not a 2).
- `grayscale`: crops and horizontal flips, for centred clothing-like grey images
  (Fashion-MNIST).
- `simclr`: SimCLR's crop, flip, colour jitter and random grayscale (Chen et al. 2020),
  for natural images (CIFAR, STL-10).

Photometric part, for every policy (`pretrain.augment.jitter`, `.erasing`; null = the
policy's default): brightness and contrast jitter of strength `jitter` with probability
0.8 (SimCLR's strength and probability; on RGB the `simclr` policy's colour jitter already
holds it) and random erasing of one rectangle (2-20 % of the image) with probability
`erasing`. Without them two crops of one grey image share its overall brightness and
texture, and the pretext task is solved by matching those instead of shape (issue 11).
kornia's brightness, contrast and erasing work on 1-channel images.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class PolicyDefaults:
    crop_min_scale: float
    jitter: float  # brightness and contrast strength; 0 = none
    erasing: float  # probability of one random erasing; 0 = none


# digits: jitter and erasing chosen by K-means stability (README, "Label-free choices");
# grayscale: the recipe of the
# Fashion-MNIST probe of issue 11 (brightness/contrast 0.4 with p 0.8, erasing p 0.3, crops of
# scale 0.5-1, flips), fixed before it ran; simclr: SimCLR's.
POLICY_DEFAULTS = {
    "digits": PolicyDefaults(crop_min_scale=0.5, jitter=0.4, erasing=0.0),
    "grayscale": PolicyDefaults(crop_min_scale=0.5, jitter=0.4, erasing=0.3),
    "simclr": PolicyDefaults(crop_min_scale=0.2, jitter=0.0, erasing=0.0),
}


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


def photometric(jitter: float, erasing: float) -> list[nn.Module]:
    """Brightness/contrast jitter (p 0.8) and random erasing (p `erasing`); empty when both are 0."""
    ops: list[nn.Module] = []
    if jitter > 0:
        ops.append(K.ColorJitter(brightness=jitter, contrast=jitter, p=0.8))
    if erasing > 0:
        ops.append(K.RandomErasing(scale=(0.02, 0.2), ratio=(0.3, 3.3), value=0.0, p=erasing))
    return ops


def resolve_policy(policy: str, dataset: str, channels: int) -> str:
    """The policy `auto` stands for; `simclr` on grayscale images is refused (params
    validation says so first: colour jitter and random grayscale need RGB)."""
    name = AUTO_POLICY[dataset] if policy == "auto" else policy
    if name == "simclr" and channels != 3:
        raise ValueError(f"augmentation policy simclr needs RGB images, got {channels} channel(s)")
    return name


def build_view_augment(
    policy: str,
    dataset: str,
    image_size: int,
    channels: int,
    crop_min_scale: float | None,
    jitter: float | None = None,
    erasing: float | None = None,
) -> nn.Module:
    """One random view per image: an nn.Module mapping (B,C,H,W) in [0,1] to the same.
    None for `crop_min_scale`, `jitter` or `erasing` takes the policy's default."""
    name = resolve_policy(policy, dataset, channels)
    defaults = POLICY_DEFAULTS[name]
    scale = defaults.crop_min_scale if crop_min_scale is None else crop_min_scale
    ops = POLICIES[name](image_size, scale)
    ops += photometric(defaults.jitter if jitter is None else jitter,
                       defaults.erasing if erasing is None else erasing)
    return nn.Sequential(*ops)
