"""What every baseline shares: the training request, the trained result, resume state and
its periodic saving, shuffled batches, how a trained model is applied to a split (cluster ids
and features) and how a saved one is loaded."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gccluster.checkpoints import load_checkpoint, load_state_into
from gccluster.errors import UserError
from gccluster.runtime import autocast, images_to_tensor, to_model_input
from gccluster.train.resume import EpochCheckpointer, ResumeState


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
    cluster balance); `summary` says how training ended (steps, stop reason, ...); `figures`
    are a method's own image grids (name -> (uint8 images (N, H, W, C), images per row)),
    written as results/baselines/<name>/figures/<name>.png."""

    model: nn.Module
    arch: dict
    curves: dict[str, list]
    summary: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)


def restore_training(request: TrainRequest, stateful: dict[str, Any], curves: Iterable[str]) -> ResumeState:
    """The resume state of an interrupted run of the same inputs (the request's checkpointer
    decides), or a fresh one; either way with an empty list for every curve it lacks."""
    state = ResumeState(history={name: [] for name in curves})
    if request.checkpointer is not None:
        state = request.checkpointer.restore(stateful, request.generator)
    for name in curves:
        state.history.setdefault(name, [])
    return state


class PeriodicSaver:
    """Writes the resume state at an epoch (or iteration) end at most every `every_s` seconds
    of training, never after the last one (the stage's outputs follow at once)."""

    def __init__(self, request: TrainRequest, stateful: dict[str, Any], state: ResumeState, every_s: float):
        self.checkpointer, self.generator = request.checkpointer, request.generator
        self.stateful, self.state, self.every_s = stateful, state, every_s
        self.last = time.monotonic()

    def maybe_save(self, finished: bool) -> None:
        if self.checkpointer is None or finished or time.monotonic() - self.last < self.every_s:
            return
        self.checkpointer.save(self.stateful, self.generator, self.state)
        self.last = time.monotonic()


class ShuffledBatches:
    """Consecutive slices of a shuffled order of the train images, a new shuffle when a pass
    is used up or what is left of it is below `minimum` (GATCluster's big batches; full
    batches only with minimum = size). Its position is part of the resume state."""

    def __init__(self):
        self.order: torch.Tensor | None = None
        self.position = 0

    def next(self, n_images: int, size: int, minimum: int, generator: torch.Generator) -> torch.Tensor:
        if self.order is None or n_images - self.position < minimum:
            self.order, self.position = torch.randperm(n_images, generator=generator), 0
        batch = self.order[self.position : self.position + size]
        self.position += len(batch)
        return batch

    def state_dict(self) -> dict:
        return {"order": self.order, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.order, self.position = state["order"], state["position"]


@dataclass(frozen=True)
class Predictions:
    clusters: np.ndarray  # (N,) cluster ids
    confidence: np.ndarray  # (N,) the probability of that cluster
    features: np.ndarray  # (N, D) what the method clusters (for the t-SNE and the silhouette)


@torch.no_grad()
def predict_images(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 512,
                   precision: str = "auto") -> Predictions:
    """Cluster ids, confidences and features of uint8 images, model in eval mode. The
    confidence is the largest cluster probability: the softmax of the scores, or the scores
    themselves for a model whose `scores_are_probabilities` (GATCluster's softmax head)."""
    model = model.to(device).eval()
    data = images_to_tensor(images, device)
    probabilities = getattr(model, "scores_are_probabilities", False)
    ids, confidence, features = [], [], []
    for start in range(0, len(data), batch_size):
        with autocast(device, precision):
            scores, feats = model(to_model_input(data[start : start + batch_size]))
        scores = scores.float()
        best = (scores if probabilities else torch.softmax(scores, dim=1)).max(dim=1)
        ids.append(scores.argmax(dim=1).cpu())
        confidence.append(best.values.cpu())
        features.append(feats.float().cpu())
    return Predictions(torch.cat(ids).numpy(), torch.cat(confidence).numpy(), torch.cat(features).numpy())


def apply_model(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 512,
                precision: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(cluster ids (N,), features (N, D)) of uint8 images, model in eval mode."""
    predictions = predict_images(model, images, device, batch_size, precision)
    return predictions.clusters, predictions.features


def load_baseline(path: str | Path, kind: str, model_class: type[nn.Module], title: str) -> nn.Module:
    """A model written by a `baseline@<name>` stage, rebuilt from its saved `arch`, in eval
    mode; a file of another kind, a corrupt one or an `arch` the class refuses is one line."""
    payload = load_checkpoint(path, kind)
    try:
        model = model_class(**payload["arch"])
    except (TypeError, ValueError) as err:
        raise UserError(f"{path}: cannot rebuild the {title} model from {payload['arch']} ({err})") from None
    return load_state_into(model, payload, path).eval()
