"""Stage I, part 2: K-means pseudo labels on F's features, then the cluster head C (Eq. 2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin
from sklearn.preprocessing import normalize

from gccluster.config import PseudolabelConfig
from gccluster.errors import UserError
from gccluster.losses.clustering import pseudo_label_cross_entropy
from gccluster.models.heads import ClusterHead
from gccluster.runtime import progress
from gccluster.train.optim import EpochLosses, adam


@dataclass
class KMeansResult:
    labels: np.ndarray  # int64 (N,)
    centers: np.ndarray  # float32 (K, D), in the L2-normalised feature space


def kmeans_pseudo_labels(features: np.ndarray, n_clusters: int, n_init: int, seed: int) -> KMeansResult:
    """K-means (scikit-learn) on L2-normalised features: the pseudo labels of 3.2.2.

    Normalising first makes Euclidean K-means act on cosine geometry, the geometry the
    contrastive loss shaped.
    """
    if len(features) < n_clusters:
        raise UserError(
            f"pseudolabel.n_clusters = {n_clusters} but the train split has only {len(features)} images"
        )
    unit = normalize(features)
    kmeans = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(unit)
    return KMeansResult(kmeans.labels_.astype(np.int64), kmeans.cluster_centers_.astype(np.float32))


def assign_to_centers(features: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Nearest K-means center for each (L2-normalised) feature: 'pretext + K-means' on new data."""
    return pairwise_distances_argmin(normalize(features), centers).astype(np.int64)


def train_cluster_head(
    features: np.ndarray,
    pseudo_labels: np.ndarray,
    cfg: PseudolabelConfig,
    device: torch.device,
    generator: torch.Generator,
) -> tuple[ClusterHead, list[float]]:
    """Fit C on frozen features with Eq. 2 (Adam, paper 4.1).

    F is frozen during this step, so its features are computed once, without augmentation,
    and C is trained on them: the same optimum as running F in every step, far cheaper.
    """
    head = ClusterHead(features.shape[1], cfg.n_clusters, cfg.head_hidden).to(device)
    optimizer = adam(head.parameters(), cfg.lr, device)
    x_all = torch.from_numpy(features).to(device)
    y_all = torch.from_numpy(pseudo_labels).to(device)
    n = len(x_all)
    epoch_loss = []
    head.train()
    for epoch in progress(range(cfg.epochs), desc="cluster head"):
        order = torch.randperm(n, generator=generator).to(device)
        losses = EpochLosses("pseudolabel", epoch, "lower pseudolabel.lr")
        for step, start in enumerate(range(0, n, cfg.batch_size)):
            idx = order[start : start + cfg.batch_size]
            loss = pseudo_label_cross_entropy(head(x_all[idx]), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.add(loss, step, weight=len(idx))
        epoch_loss.append(losses.mean())
    return head.cpu(), epoch_loss
