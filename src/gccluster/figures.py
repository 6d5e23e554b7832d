"""Figures written by the stages: image grids (one row per cluster)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from gccluster.io import atomic_path


def save_cluster_grid(images: np.ndarray, per_row: int, path: str | Path, scale: int = 1) -> None:
    """Save uint8 (N, H, W, C) images as a PNG grid, `per_row` images per row (row k = cluster k).

    Small images (digits are 16x16) are enlarged `scale` times with nearest-neighbour so that
    the grid is readable.
    """
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
    if tensor.shape[1] == 1:
        tensor = tensor.expand(-1, 3, -1, -1)
    grid = make_grid(tensor, nrow=per_row, padding=2, pad_value=255)
    array = grid.permute(1, 2, 0).numpy().astype(np.uint8)
    image = Image.fromarray(array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def first_per_cluster(images: np.ndarray, labels: np.ndarray, n_clusters: int, per_cluster: int) -> np.ndarray:
    """The first `per_cluster` images of each cluster in cluster order, blank where a cluster
    has fewer: rows for `save_cluster_grid`."""
    blank = np.zeros_like(images[:1])
    rows = []
    for k in range(n_clusters):
        members = images[labels == k][:per_cluster]
        pad = np.repeat(blank, per_cluster - len(members), axis=0)
        rows.append(np.concatenate([members, pad]))
    return np.concatenate(rows)
