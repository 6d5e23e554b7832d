"""The networks of Gan et al. 2021, Fig. 2 (the WGAN-GP MNIST networks of Gulrajani et al.,
as the official `gan_mnist.py` builds them): every conv and deconv 5 x 5, no batch norm.

    G(y, z): [z, onehot(y)] -> Linear(4·4·4w) -> ReLU -> (4w, 4, 4)
             -> Deconv(2w) -> ReLU [-> crop] -> Deconv(w) -> ReLU -> Deconv(channels) -> sigmoid
    D(x), C(x): Conv(w) -> LReLU(0.2) -> Conv(2w) -> LReLU -> Conv(4w) -> LReLU -> flatten (4·4·4w)
             -> Linear(1) (D) or Linear(K) (C, logits of q(y|x))

Per size (Fig. 2 caption): 28 px drops a pixel after G's first deconv (8 -> 7); 16 px (USPS)
takes stride 1 in G's last deconv and in D's and C's first conv; 32 px (CIFAR-10) keeps G's
first deconv at 8 x 8. D and C have the same trunk and separate weights (a shared trunk with
two heads lost >= 10 % in the paper). Weights are initialised as tflib does (`tflib_init`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

KERNEL = 5
# size -> (strides of G's three deconvs, whether G crops 8 -> 7 after the first, strides of
# D's and C's three convs); every layout starts G at 4 x 4 and ends D's trunk at 4 x 4.
LAYOUTS = {
    28: ((2, 2, 2), True, (2, 2, 2)),
    16: ((2, 2, 1), False, (1, 2, 2)),
    32: ((2, 2, 2), False, (2, 2, 2)),
}


def _deconv(in_channels: int, out_channels: int, stride: int) -> nn.ConvTranspose2d:
    """A transposed conv whose output is `stride` times the input, as TensorFlow's 'SAME' (TF
    pads stride-2 layers one pixel more after than before; symmetric here: same shapes, a
    one-pixel shift of the learned filters)."""
    return nn.ConvTranspose2d(in_channels, out_channels, KERNEL, stride=stride, padding=2,
                              output_padding=stride - 1)


def _conv(in_channels: int, out_channels: int, stride: int) -> nn.Conv2d:
    """A conv with ceil(input / stride) outputs, as TensorFlow's 'SAME' (padded symmetrically)."""
    return nn.Conv2d(in_channels, out_channels, KERNEL, stride=stride, padding=2)


def _uniform_(weight: torch.Tensor, std: float) -> None:
    """tflib's `uniform(stdev)`: U(−std·√3, std·√3), whose standard deviation is `std`."""
    bound = std * math.sqrt(3.0)
    nn.init.uniform_(weight, -bound, bound)


@torch.no_grad()
def tflib_init(module: nn.Module) -> None:
    """The official code's initialisation (tflib, he_init on): conv std √(4 / (fan_in +
    fan_out)) with fan_in = c_in·k², fan_out = c_out·k² / s² (a deconv: fan_in = c_in·k² / s²,
    fan_out = c_out·k²); linear layers Glorot, std √(2 / (in + out)); zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.ConvTranspose2d):
            c_in, c_out, k, stride = layer.in_channels, layer.out_channels, layer.kernel_size[0], layer.stride[0]
            _uniform_(layer.weight, math.sqrt(4.0 / (c_in * k * k / stride**2 + c_out * k * k)))
        elif isinstance(layer, nn.Conv2d):
            c_in, c_out, k, stride = layer.in_channels, layer.out_channels, layer.kernel_size[0], layer.stride[0]
            _uniform_(layer.weight, math.sqrt(4.0 / (c_in * k * k + c_out * k * k / stride**2)))
        elif isinstance(layer, nn.Linear):
            _uniform_(layer.weight, math.sqrt(2.0 / (layer.in_features + layer.out_features)))
        else:
            continue
        nn.init.zeros_(layer.bias)


class PreciseGenerator(nn.Module):
    """G(y, z): a cluster id y (as a one-hot) and Gaussian noise z -> an image in [0, 1]."""

    def __init__(self, image_size: int, channels: int, n_clusters: int, width: int, noise_dim: int):
        super().__init__()
        strides, self.crop, _ = LAYOUTS[image_size]
        self.n_clusters, self.noise_dim, self.width = n_clusters, noise_dim, width
        self.input = nn.Linear(noise_dim + n_clusters, 4 * 4 * 4 * width)
        self.deconv1 = _deconv(4 * width, 2 * width, strides[0])
        self.deconv2 = _deconv(2 * width, width, strides[1])
        self.deconv3 = _deconv(width, channels, strides[2])
        tflib_init(self)

    def forward(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(labels, self.n_clusters).to(noise.dtype)
        x = torch.relu(self.input(torch.cat([noise, onehot], dim=1)))
        x = torch.relu(self.deconv1(x.view(-1, 4 * self.width, 4, 4)))
        if self.crop:
            x = x[:, :, :7, :7]
        x = torch.relu(self.deconv2(x))
        # The sigmoid in float32: in bf16 it returns exactly 1.0 above a logit of about 6.2, and
        # its backward (which reads the output) then passes no gradient to the brightest pixels.
        return torch.sigmoid(self.deconv3(x).float())


class ConvTrunk(nn.Module):
    """D's and C's trunk: three 5 x 5 convs with LeakyReLU(0.2) to a 4 x 4 x 4w map, flattened."""

    def __init__(self, image_size: int, channels: int, width: int):
        super().__init__()
        _, _, strides = LAYOUTS[image_size]
        self.convs = nn.ModuleList([_conv(channels, width, strides[0]), _conv(width, 2 * width, strides[1]),
                                    _conv(2 * width, 4 * width, strides[2])])
        self.feature_dim = 4 * 4 * 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = nn.functional.leaky_relu(conv(x), 0.2)
        return x.flatten(1)


class PreciseCritic(nn.Module):
    """D(x): the WGAN-GP critic on images in [0, 1], one unbounded score per image."""

    def __init__(self, image_size: int, channels: int, width: int):
        super().__init__()
        self.trunk = ConvTrunk(image_size, channels, width)
        self.output = nn.Linear(self.trunk.feature_dim, 1)
        tflib_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.trunk(x)).squeeze(1)


class PreciseClassifier(nn.Module):
    """C(x): logits of q(y | x) for images in [0, 1], and the trunk's features."""

    def __init__(self, image_size: int, channels: int, width: int, n_clusters: int):
        super().__init__()
        self.trunk = ConvTrunk(image_size, channels, width)
        self.output = nn.Linear(self.trunk.feature_dim, n_clusters)
        tflib_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(x)
        return self.output(features), features


class PreciseClusterer(nn.Module):
    """The trained model: images in [-1, 1] -> (C's logits, C's trunk features); the read-out
    is argmax C(x) on real images. It keeps G too, so that a saved model can draw samples per
    cluster (D is only needed in training and is not kept)."""

    def __init__(self, image_size: int, channels: int, n_clusters: int, width: int, noise_dim: int):
        super().__init__()
        if image_size not in LAYOUTS:
            raise ValueError(f"no layout for {image_size} px (allowed: {', '.join(map(str, LAYOUTS))})")
        self.classifier = PreciseClassifier(image_size, channels, width, n_clusters)
        self.generator = PreciseGenerator(image_size, channels, n_clusters, width, noise_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier((x + 1.0) / 2.0)  # the method's images are in [0, 1]


def unit_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """G's [0, 1] images (n, C, H, W) -> uint8 (n, H, W, C), the pipeline's image format."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)

