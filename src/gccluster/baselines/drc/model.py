"""DRC's clustering network (PICA's, which DRC "follows"): an optional fixed Sobel front end,
a trunk, a main head of K clusters and an optional over-clustering head, each a Linear layer
whose logits are the assignment features z (their softmax the assignment probabilities p)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gccluster.models.backbones import SmallCNN


class SobelFrontEnd(nn.Module):
    """PICA's fixed input layer for RGB: grey (mean of the channels), then the horizontal and
    vertical 3x3 Sobel gradients: 2 channels. No trainable parameters."""

    def __init__(self):
        super().__init__()
        gx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
        self.register_buffer("kernels", torch.stack([gx, gx.T])[:, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(dim=1, keepdim=True)
        return F.conv2d(grey, self.kernels.to(grey.dtype), padding=1)


class PICAResNet34(nn.Module):
    """PICA's ResNet-34: a 3x3 stride-1 stem with BN-ReLU and a 2x2 stride-2 max-pool (padding
    1), basic blocks 64x3, 128x4, 256x6, 512x3, then average pooling over the last map (PICA's
    fixed pool of 3 at 32 px and 7 at 96 px covers exactly that map): 512-d features. Built from
    torchvision's blocks; torchvision's initialisation (PICA keeps PyTorch's defaults)."""

    def __init__(self, in_channels: int):
        super().__init__()
        from torchvision.models import resnet34

        net = resnet34(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.MaxPool2d(kernel_size=2, stride=2, padding=1)
        net.fc = nn.Identity()
        self.net = net
        self.feature_dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DRCNetwork(nn.Module):
    """Images in [-1, 1] -> trunk features; `heads[0]` is the main head (K clusters), `heads[1]`
    the over-clustering head when there is one."""

    def __init__(self, in_channels: int, image_size: int, n_clusters: int, overcluster_k: int, backbone: str,
                 width: int, sobel: bool):
        super().__init__()
        self.front = SobelFrontEnd() if sobel else nn.Identity()
        trunk_in = 2 if sobel else in_channels
        if backbone == "small_cnn":
            # GAP readout: PICA's trunk ends in average pooling too.
            self.trunk = SmallCNN(trunk_in, image_size, width=width, readout="pool")
        elif backbone == "resnet34":
            self.trunk = PICAResNet34(trunk_in)
        else:
            raise ValueError(f"DRC backbone must be 'small_cnn' or 'resnet34', got {backbone!r}")
        sizes = [n_clusters] + ([overcluster_k] if overcluster_k > 0 else [])
        self.heads = nn.ModuleList(nn.Linear(self.trunk.feature_dim, k) for k in sizes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.front(x))


def zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Bilinear resize of square images by `factor` (PICA's Resize before its crops)."""
    if factor == 1.0:
        return x
    side = round(x.shape[-1] * factor)
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


def crop_at(x: torch.Tensor, size: int, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """A size x size crop of each image, at its own (top, left) offset."""
    steps = torch.arange(size, device=x.device)
    rows = (top[:, None] + steps)[:, None, :, None]
    cols = (left[:, None] + steps)[:, None, None, :]
    batch = torch.arange(len(x), device=x.device)[:, None, None, None]
    channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return x[batch, channels, rows, cols]


def random_offsets(x: torch.Tensor, slack: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(top, left) crop offsets for each image of x, uniform in 0..slack, drawn top first."""
    top = torch.randint(0, slack + 1, (len(x),), generator=generator, device=generator.device)
    left = torch.randint(0, slack + 1, (len(x),), generator=generator, device=generator.device)
    return top.to(x.device), left.to(x.device)


def original_view(x: torch.Tensor, factor: float, generator: torch.Generator) -> torch.Tensor:
    """PICA's "original" (reduced) transform: resize by `factor`, then a random crop back to the
    input size, offsets uniform per image."""
    size = x.shape[-1]
    zoomed = zoom(x, factor)
    top, left = random_offsets(x, zoomed.shape[-1] - size, generator)
    return crop_at(zoomed, size, top, left)


def padded_crop_view(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """The specification's CPU-scale original view (A5, torchvision's RandomCrop(size,
    padding=pad)): `pad` black pixels around each image, then a random crop back to the input
    size, offsets uniform per image; x in [0, 1]."""
    if pad == 0:
        return x
    size = x.shape[-1]
    padded = F.pad(x, (pad, pad, pad, pad), value=0.0)
    top, left = random_offsets(x, 2 * pad, generator)
    return crop_at(padded, size, top, left)


def centre_view(x: torch.Tensor, factor: float) -> torch.Tensor:
    """PICA's test transform: the same resize, then the centre crop."""
    size = x.shape[-1]
    zoomed = zoom(x, factor)
    offset = torch.full((len(x),), (zoomed.shape[-1] - size) // 2, device=x.device)
    return crop_at(zoomed, size, offset, offset)


class DRCClusterer(nn.Module):
    """The trained model: images in [-1, 1] -> (main-head logits (B, K), trunk features),
    read out on the test view: PICA's resize by `original_zoom` and centre crop, or the images
    themselves (`original_zoom` 1, the `pad_crop` original view's)."""

    def __init__(self, in_channels: int, image_size: int, n_clusters: int, overcluster_k: int, backbone: str,
                 width: int, sobel: bool, original_zoom: float):
        super().__init__()
        self.original_zoom = original_zoom
        self.network = DRCNetwork(in_channels, image_size, n_clusters, overcluster_k, backbone, width, sobel)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.network.features(centre_view(x, self.original_zoom))
        return self.network.heads[0](features), features
