"""DCCS's three networks (official code, `models.py`) and the prior P_Z (paper 3.3)."""

from __future__ import annotations

import torch
from torch import nn


def _init_weights(module: nn.Module) -> None:
    """Xavier-normal weights and zero biases for conv/linear layers, BN γ=1, β=0 (the code's
    `reset_parameters`)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


def conv_padding(image_size: int) -> int:
    """The official `Encoder28` uses unpadded 4x4 stride-2 convs (28 -> 13 -> 5); for other
    sizes (16 px digits, 32 px) padding 1 halves the side exactly (16 -> 8 -> 4)."""
    return 0 if image_size == 28 else 1


class DCCSEncoder(nn.Module):
    """Q: conv(64, 4x4, s2)-BN-LReLU, conv(128, 4x4, s2)-BN-LReLU, flatten (the activation
    `a` that D reads), Linear(1024)-BN-LReLU, Linear(S + K) split into z_s (linear, the style)
    and the category logits (z_c = their softmax). The official `Encoder28` for 28 px; the
    same layers with padding 1 for 16 and 32 px (the paper's CIFAR and STL encoders are
    ResNets, not implemented here)."""

    def __init__(self, in_channels: int, image_size: int, style_dim: int, n_clusters: int):
        super().__init__()
        self.style_dim, self.n_clusters = style_dim, n_clusters
        pad = conv_padding(image_size)
        side = image_size
        for _ in range(2):
            side = (side + 2 * pad - 4) // 2 + 1
        self.feature_dim = 128 * side * side
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, 64, 4, stride=2, padding=pad, bias=False),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, stride=2, padding=pad, bias=False),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2),
        )
        self.fc = nn.Sequential(
            nn.Linear(self.feature_dim, 1024, bias=False),
            nn.BatchNorm1d(1024),
            nn.LeakyReLU(0.2),
            nn.Linear(1024, style_dim + n_clusters),
        )
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x in [-1, 1] -> (z_s (B, S), category logits (B, K), activation a (B, A))."""
        features = self.conv(x).flatten(1)
        out = self.fc(features)
        return out[:, : self.style_dim], out[:, self.style_dim :], features


def latent_code(style: torch.Tensor, category_logits: torch.Tensor) -> torch.Tensor:
    """z = [z_s, softmax(logits)]: style first, as the official code concatenates it; the
    critic and D see probabilities, not logits. Always float32: under bf16 autocast,
    probabilities near 1 would be rounded in steps of ~0.004 while the prior's one-hot codes
    the critic compares them with are exact (the official code runs in fp32)."""
    return torch.cat([style.float(), torch.softmax(category_logits.float(), dim=1)], dim=1)


def _mlp(in_dim: int) -> nn.Sequential:
    """Linear(1024)-LReLU-Linear(512)-LReLU-Linear(1), no normalisation (the code's
    `Critic` and `Discriminator`)."""
    net = nn.Sequential(nn.Linear(in_dim, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 512), nn.LeakyReLU(0.2),
                        nn.Linear(512, 1))
    _init_weights(net)
    return net


class DCCSCritic(nn.Module):
    """C of Eq. 8-11: scores a latent code z (prior or encoded)."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.net = _mlp(latent_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class DCCSDiscriminator(nn.Module):
    """D of Eq. 3-6: scores a pair (encoder activation a, latent code z) as matched or not."""

    def __init__(self, feature_dim: int, latent_dim: int):
        super().__init__()
        self.net = _mlp(feature_dim + latent_dim)

    def forward(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([features, z.to(features.dtype)], dim=1))


def sample_prior(batch: int, style_dim: int, n_clusters: int, sigma: float, generator: torch.Generator,
                 device: torch.device) -> torch.Tensor:
    """z̃ ~ P_Z (paper 3.3): z̃_s ~ N(0, σ² I), z̃_c one-hot of a uniform category; [z̃_s, z̃_c]."""
    style = sigma * torch.randn(batch, style_dim, generator=generator, device=generator.device)
    category = torch.randint(0, n_clusters, (batch,), generator=generator, device=generator.device)
    one_hot = torch.nn.functional.one_hot(category, n_clusters).float()
    return torch.cat([style, one_hot], dim=1).to(device)
