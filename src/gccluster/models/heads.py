"""Heads on top of F's features: SimCLR's projection MLP and GCC's cluster head C."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """SimCLR's g(.): Linear-ReLU-Linear. Trained by Eq. 1; saved beside F so that K-means
    can run on g(F(x)) (`pseudolabel.kmeans_space: projection`); F alone feeds everything else."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = hidden_dim or in_dim
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


class ClusterHead(nn.Module):
    """C(.): two fully connected layers from features to K cluster logits (paper 4.1)."""

    def __init__(self, in_dim: int, n_clusters: int, hidden_dim: int = 512):
        super().__init__()
        self.n_clusters = n_clusters
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, n_clusters)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)
