"""GATCluster's network (Sec. 3.2, Fig. 2, and the official code's STL-10 config): an image
feature module (a VGG-style grayscale trunk ending in a 6 x 6 x K map F), a label feature
module and a Gaussian attention module."""

from __future__ import annotations

from typing import get_args

import torch
from torch import nn

from gccluster.baselines.gatcluster.params import InputRange
from gccluster.data.augment import rgb_to_grayscale

MAP_SIZE = 6  # the attention map's side (the paper's best, Table 4)

# Trunks per input size: 3x3 convolutions (channels as multiples of `width`, padding) with
# BN and ReLU, "M" a 2x2 max-pool; each ends in a 6 x 6 map, then a 1x1 convolution to K
# channels with BN and ReLU. 96 px is the official STL-10 trunk (64-128-256 at width 32:
# 96-90-45-39-19-13-6); 16 and 28 px the specification's small trunks (B5); 32 px, whose
# architecture the paper left to an unreleased supplement, is ours.
BACKBONES: dict[int, tuple] = {
    16: ((1, 1), (1, 1), "M", (2, 0), (2, 1)),  # 16-16-16-8-6-6
    28: ((1, 0), (1, 0), "M", (2, 0), (2, 0), (2, 0)),  # 28-26-24-12-10-8-6
    32: ((2, 1), (2, 1), "M", (4, 0), (4, 0), "M"),  # 32-32-32-16-14-12-6
    96: ((2, 0), (2, 0), (2, 0), "M", (4, 0), (4, 0), (4, 0), "M", (8, 0), (8, 0), (8, 0), "M"),
}


def conv_bn_relu(c_in: int, c_out: int, kernel: int, padding: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=padding), nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class ImageFeatureModule(nn.Module):
    """Grayscale images (B, 1, S, S) -> F (B, K, 6, 6), for S in BACKBONES."""

    def __init__(self, image_size: int, n_clusters: int, width: int):
        super().__init__()
        if image_size not in BACKBONES:
            raise ValueError(f"GATCluster has no backbone for {image_size} px (allowed: {sorted(BACKBONES)})")
        layers: list[nn.Module] = []
        channels = 1
        for item in BACKBONES[image_size]:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            multiple, padding = item
            layers += conv_bn_relu(channels, multiple * width, 3, padding)
            channels = multiple * width
        layers += conv_bn_relu(channels, n_clusters, 1, 0)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def label_mlp(n_clusters: int) -> nn.Sequential:
    """The code's classifier up to its softmax: Linear(K, K), ReLU, Linear(K, K) (the paper
    draws one FC layer); `probabilities` applies the softmax. Its input dimension is fea_dim,
    which the code sets to K."""
    return nn.Sequential(nn.Linear(n_clusters, n_clusters), nn.ReLU(inplace=True), nn.Linear(n_clusters, n_clusters))


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """The label MLPs' softmax, always in float32. Under bf16 autocast a softmax output above
    0.999 rounds to exactly 1.0, and the BCE of L_A (Eq. 10) and L_R (Eq. 7) against
    a target just below 1 then has a gradient (p - t) / max(p(1 - p), 1e-12) of about 1e9:
    one such sub-batch inflates Adam's second moments for the rest of the run (measured on
    the digits default's trained model: L_A gradient norms of 3.6e4-1.6e5 in bf16 against
    0.16-0.30 in fp32)."""
    return torch.softmax(logits.float(), dim=1)


def map_coordinates(size: int) -> torch.Tensor:
    """u of Eq. 9 on a size x size map, normalised to [0, 1]: (size², 2) rows (x/(size-1),
    y/(size-1)) in row-major order (x the row, as the code's fea_coords)."""
    steps = torch.arange(size, dtype=torch.float32) / (size - 1)
    rows, cols = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=1)


def gaussian_attention_map(theta: torch.Tensor, alpha: float, reading: str, size: int = MAP_SIZE) -> torch.Tensor:
    """Eq. 9 with Σ = δI, from θ (B, 3) in (0, 1) -> A (B, size, size).

    `code` (the official code): μ = (θ0, θ2), δ = θ2, A = exp(-|u - μ|² / (2 α δ + 1e-5)).
    `paper`: μ = (θ0, θ1), δ = θ2, A = exp(-|u - μ|² / (α δ + 1e-5))."""
    if reading == "code":
        mu, denominator = theta[:, [0, 2]], 2 * alpha * theta[:, 2] + 1e-5
    elif reading == "paper":
        mu, denominator = theta[:, :2], alpha * theta[:, 2] + 1e-5
    else:
        raise ValueError(f"attention must be 'code' or 'paper', got {reading!r}")
    coords = map_coordinates(size).to(device=theta.device, dtype=theta.dtype)
    squared = ((coords[None] - mu[:, None, :]) ** 2).sum(dim=2)
    return torch.exp(-squared / denominator[:, None]).view(-1, size, size)


INPUT_RANGES: tuple[str, ...] = get_args(InputRange)
# Per input range: the trunk's input from grey images in [0, 1] (training's views) and from
# grey images in [-1, 1] (the read-out's, the pipeline's range), each in one step.
FROM_UNIT = {"unit": lambda x: x, "symmetric": lambda x: x * 2 - 1}
FROM_SYMMETRIC = {"unit": lambda x: (x + 1) / 2, "symmetric": lambda x: x}


def check_input_range(input_range: str) -> None:
    """One line naming the allowed ranges, for a checkpoint's arch or a direct caller (params
    are refused earlier, by their Literal)."""
    if input_range not in INPUT_RANGES:
        raise ValueError(f"input_range must be one of {INPUT_RANGES}, got {input_range!r}")


def to_trunk_range(x: torch.Tensor, input_range: str) -> torch.Tensor:
    """The trunk's input from grey images in [0, 1]: `unit` feeds them as they are (the
    official code's ToTensor, no normalisation), `symmetric` maps them to [-1, 1] (2x - 1, the
    pipeline's own range). The two differ where a trunk zero-pads (the 16 and 32 px trunks):
    in [0, 1] the padding is black, the background; in [-1, 1] a mid-grey frame around it."""
    check_input_range(input_range)
    return FROM_UNIT[input_range](x)


class GATClusterNetwork(nn.Module):
    """Grayscale images in [0, 1] (`to_grey` of the views) -> (l, l^a, g): the label features (B, K),
    the attention label features (B, K; None without the attention module) and the pooled
    label-feature map g (B, K), the features the t-SNE shows.

    Label feature module: G = BN(Conv1x1(F)), g = AvgPool(G), l = MLP(g). Attention module:
    H = ReLU(BN(Conv1x1(F))), θ = sigmoid(Linear(vec H)) (B, 3), A from Eq. 9, the attention
    feature f^a = Σ_xy G[:, :, x, y] A_xy (a spatial sum, as the code), l^a = MLP_att(f^a).
    The trunk sees the images in `input_range` (`to_trunk_range`)."""

    def __init__(self, image_size: int, n_clusters: int, width: int, attention_module: bool, alpha: float,
                 attention: str, input_range: str = "unit"):
        super().__init__()
        check_input_range(input_range)
        self.alpha, self.attention, self.input_range = alpha, attention, input_range
        self.trunk = ImageFeatureModule(image_size, n_clusters, width)
        self.feature_conv = nn.Sequential(*conv_bn_relu(n_clusters, n_clusters, 1, 0, relu=False))
        self.classifier = label_mlp(n_clusters)
        self.attention_module = attention_module
        if attention_module:
            self.att_conv = nn.Sequential(*conv_bn_relu(n_clusters, n_clusters, 1, 0))
            self.theta = nn.Sequential(nn.Linear(MAP_SIZE * MAP_SIZE * n_clusters, 3))  # sigmoid in forward
            self.att_classifier = label_mlp(n_clusters)

    def forward(self, x: torch.Tensor, with_attention: bool = True):
        return self.from_trunk_input(to_trunk_range(x, self.input_range), with_attention)

    def from_trunk_input(self, x: torch.Tensor, with_attention: bool = True):
        """`forward` for images already in the trunk's range (the read-out's)."""
        features = self.trunk(x)
        label_map = self.feature_conv(features)
        pooled = label_map.mean(dim=(2, 3))
        label_features = probabilities(self.classifier(pooled))
        if not (with_attention and self.attention_module):
            return label_features, None, pooled
        # θ, A and f^a in float32 as well: in bf16, θ keeps 3 significant digits and the
        # Gaussian's exponent divides by 2αθ2, a few hundredths.
        theta = torch.sigmoid(self.theta(self.att_conv(features).flatten(1)).float())
        attention_map = gaussian_attention_map(theta, self.alpha, self.attention)
        attended = (label_map.float() * attention_map[:, None]).sum(dim=(2, 3))
        return label_features, probabilities(self.att_classifier(attended)), pooled


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """Grey images in the range they come in, [0, 1] or [-1, 1] (ITU-R 601's weights sum to
    1): grey as they are, RGB made grey, for every dataset (the paper: colour cues mislead
    early training). Training draws its views in [0, 1], as the official code's `stl10_gray`
    makes them (ToTensor), and the network hands its trunk the range `input_range` names
    (`to_trunk_range`); the read-out's [-1, 1] images take `GATClusterClusterer.trunk_input`."""
    return rgb_to_grayscale(x) if x.shape[1] == 3 else x


class GATClusterClusterer(nn.Module):
    """The trained model: images in [-1, 1] (grey or RGB) -> (l as cluster scores (B, K),
    pooled label-feature map g (B, K)); argmax l is the cluster, as the paper's inference
    (the attention module is not used)."""

    scores_are_probabilities = True  # l is the label MLP's softmax output

    def __init__(self, image_size: int, n_clusters: int, width: int, attention_module: bool, alpha: float,
                 attention: str, input_range: str = "unit"):
        super().__init__()
        # `unit` here (not the config's default) rebuilds checkpoints written before
        # input_range was a key as those of e69354d on were trained, in [0, 1]; older ones
        # (trained in [-1, 1]) need `symmetric`, which their arch cannot say: retrain them
        self.network = GATClusterNetwork(image_size, n_clusters, width, attention_module, alpha, attention,
                                         input_range)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        label_features, _, pooled = self.network.from_trunk_input(self.trunk_input(x), with_attention=False)
        return label_features, pooled

    def trunk_input(self, x: torch.Tensor) -> torch.Tensor:
        """The pipeline's images in [-1, 1] (grey or RGB) in the trunk's range, without a
        round trip: `symmetric` takes their grey as it is (ITU-R 601's weights sum to 1, so
        the grey of 2x - 1 is 2 grey(x) - 1), `unit` maps it to [0, 1]."""
        return FROM_SYMMETRIC[self.network.input_range](to_grey(x))
