"""What every baseline shares: the training request, the trained result, and how a
trained model is applied to a split (cluster ids and features)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from gccluster.runtime import autocast, images_to_tensor, to_model_input
from gccluster.train.resume import EpochCheckpointer


@dataclass
class TrainRequest:
    """Everything a method may read: the train images (uint8 N, H, W, C), never labels."""

    images: np.ndarray
    dataset: str
    n_clusters: int  # K: the number of classes, which every seed method takes as given
    config: Any  # the method's params section
    device: torch.device
    precision: str  # base.precision
    generator: torch.Generator
    checkpointer: EpochCheckpointer | None = None


@dataclass
class TrainedBaseline:
    """`model` maps images in [-1, 1] to (cluster scores (B, K), features (B, D));
    `arch` rebuilds it; `curves` are per-epoch columns for loss.csv (every loss part and the
    cluster balance); `summary` says how training ended (steps, stop reason, ...)."""

    model: nn.Module
    arch: dict
    curves: dict[str, list]
    summary: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def apply_model(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 512,
                precision: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(cluster ids (N,), features (N, D)) of uint8 images, model in eval mode."""
    model = model.to(device).eval()
    data = images_to_tensor(images, device)
    ids, features = [], []
    for start in range(0, len(data), batch_size):
        with autocast(device, precision):
            scores, feats = model(to_model_input(data[start : start + batch_size]))
        ids.append(scores.argmax(dim=1).cpu())
        features.append(feats.float().cpu())
    return torch.cat(ids).numpy(), torch.cat(features).numpy()
