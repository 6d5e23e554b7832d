"""Features F(X) and cluster predictions C(F(X)) for a whole split, in eval mode."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gccluster.runtime import autocast, images_to_tensor, to_model_input


@torch.no_grad()
def extract_features(
    backbone: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 512, *, precision: str
) -> np.ndarray:
    """F(X) for uint8 (N, H, W, C) images -> float32 (N, feature_dim), under the run's
    `base.precision` (bf16 autocast where `runtime.use_bf16` says so): the same precision as
    the stage's training, so that `fp32` on an AMX CPU or a GPU means fp32 here too."""
    backbone = backbone.to(device).eval()
    data = images_to_tensor(images, device)
    chunks = []
    for start in range(0, len(data), batch_size):
        with autocast(device, precision):
            chunks.append(backbone(to_model_input(data[start : start + batch_size])).float().cpu())
    return torch.cat(chunks).numpy()


def kmeans_space_encoder(backbone: nn.Module, projector: nn.Module | None, space: str) -> nn.Module:
    """The map K-means runs on (`pseudolabel.kmeans_space`): F for "backbone", g∘F for
    "projection" (SimCLR's projector, which then must be given)."""
    if space == "backbone":
        return backbone
    if space == "projection":
        if projector is None:
            raise ValueError("kmeans_space 'projection' needs the SimCLR projector")
        return nn.Sequential(backbone, projector)
    raise ValueError(f"kmeans_space must be 'backbone' or 'projection', got {space!r}")


@torch.no_grad()
def predict_clusters(head: nn.Module, features: np.ndarray, device: torch.device, batch_size: int = 4096) -> np.ndarray:
    """argmax_k C(F(X))_k for precomputed features."""
    head = head.to(device).eval()
    out = []
    for start in range(0, len(features), batch_size):
        chunk = torch.from_numpy(features[start : start + batch_size]).to(device)
        out.append(head(chunk).argmax(dim=1).cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def predict_with_confidence(
    head: nn.Module, features: np.ndarray, device: torch.device, batch_size: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """(argmax_k C(F(X))_k, its softmax probability) for precomputed features."""
    head = head.to(device).eval()
    ids, confidence = [], []
    for start in range(0, len(features), batch_size):
        chunk = torch.from_numpy(features[start : start + batch_size]).to(device)
        best = torch.softmax(head(chunk).float(), dim=1).max(dim=1)
        ids.append(best.indices.cpu())
        confidence.append(best.values.cpu())
    return torch.cat(ids).numpy(), torch.cat(confidence).numpy()
