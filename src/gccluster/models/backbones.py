"""Feature extractors F: a small CNN (the CPU default) and the CIFAR-stem ResNet-18.

Each backbone maps (B, C, H, W) images in [-1, 1] to (B, feature_dim) features and exposes
`feature_dim`. K-means, the cluster head and GCC's Stage II losses all work on these
features; the SimCLR projection head sits on top of them only during pretraining.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Four 3x3 conv blocks (two 2x poolings), then a readout and a linear layer to the
    feature vector.

    `readout` (`pretrain.readout`): "flatten" keeps every position of the last feature map
    (one weight per position: the arrangement of strokes is seen directly), "pool" averages
    each channel over positions first (global average pooling, as ResNets do). Which suits a
    dataset is chosen without labels (README, "Label-free choices").
    """

    def __init__(self, in_channels: int, image_size: int, width: int = 32, feature_dim: int = 128,
                 readout: str = "flatten"):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"small_cnn needs an image size divisible by 4, got {image_size}")
        if readout not in ("flatten", "pool"):
            raise ValueError(f"small_cnn readout must be 'flatten' or 'pool', got {readout!r}")
        w = width
        self.conv = nn.Sequential(
            _conv_block(in_channels, w),
            _conv_block(w, 2 * w),
            nn.MaxPool2d(2),
            _conv_block(2 * w, 4 * w),
            nn.MaxPool2d(2),
            _conv_block(4 * w, 4 * w),
        )
        side = image_size // 4
        positions = side * side if readout == "flatten" else 1
        self.fc = nn.Sequential(
            nn.Identity() if readout == "flatten" else nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * w * positions, feature_dim),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResNet18(nn.Module):
    """torchvision's ResNet-18 without its classifier (512-d features after global pooling).

    `stem`: "cifar" replaces the 7x7 stride-2 conv and the max-pool by one 3x3 stride-1 conv,
    for 32 px images (SCAN's CIFAR backbone); "imagenet" keeps torchvision's stem, for 96 px
    STL-10 (SCAN's STL-10 backbone), where the CIFAR stem would run every block at 96 px.
    """

    def __init__(self, in_channels: int, image_size: int, width: int = 64, stem: str = "cifar"):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        if stem == "cifar":
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        net.fc = nn.Identity()
        self.net = net
        self.feature_dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _small_cnn(in_channels: int, image_size: int, width: int, readout: str) -> nn.Module:
    return SmallCNN(in_channels, image_size, width=width, readout=readout)


def _resnet18_cifar(in_channels: int, image_size: int, width: int, readout: str) -> nn.Module:
    return ResNet18(in_channels, image_size, stem="cifar")  # ResNets always pool


def _resnet18_imagenet(in_channels: int, image_size: int, width: int, readout: str) -> nn.Module:
    return ResNet18(in_channels, image_size, stem="imagenet")


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": _small_cnn,
    "resnet18": _resnet18_cifar,
    "resnet18_imagenet_stem": _resnet18_imagenet,
}


def build_backbone(name: str, in_channels: int, image_size: int, width: int, readout: str = "flatten") -> nn.Module:
    """F by name (`pretrain.backbone`); `width` and `readout` shape small_cnn only. Checkpoints
    written before `readout` existed rebuild with its default."""
    return BACKBONES[name](in_channels=in_channels, image_size=image_size, width=width, readout=readout)
