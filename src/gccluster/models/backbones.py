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
    """Four 3x3 conv blocks (two 2x poolings), then a linear layer to the feature vector.

    The last feature map is flattened, not globally averaged: on 16x16 digits the spatial
    arrangement of strokes is the class, and global pooling throws it away.
    """

    def __init__(self, in_channels: int, image_size: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"small_cnn needs an image size divisible by 4, got {image_size}")
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
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * w * side * side, feature_dim),
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


class ResNet18Cifar(nn.Module):
    """torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 conv, no max-pool), as in SCAN."""

    def __init__(self, in_channels: int, image_size: int, width: int = 64, feature_dim: int = 512):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = net
        self.feature_dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "resnet18": ResNet18Cifar,
}


def build_backbone(name: str, in_channels: int, image_size: int, width: int) -> nn.Module:
    return BACKBONES[name](in_channels=in_channels, image_size=image_size, width=width)
