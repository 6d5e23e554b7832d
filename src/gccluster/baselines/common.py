"""What every baseline shares: the training request, the trained result, how a trained
model is applied to a split (cluster ids and features) and how a saved one is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gccluster.checkpoints import load_checkpoint, load_state_into
from gccluster.errors import UserError
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


def load_baseline(path: str | Path, kind: str, model_class: type[nn.Module], title: str) -> nn.Module:
    """A model written by a `baseline@<name>` stage, rebuilt from its saved `arch`, in eval
    mode; a file of another kind, a corrupt one or an `arch` the class refuses is one line."""
    payload = load_checkpoint(path, kind)
    try:
        model = model_class(**payload["arch"])
    except (TypeError, ValueError) as err:
        raise UserError(f"{path}: cannot rebuild the {title} model from {payload['arch']} ({err})") from None
    return load_state_into(model, payload, path).eval()
