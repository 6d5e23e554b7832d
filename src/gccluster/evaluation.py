"""The `evaluate` stage's logic: ACC/NMI/ARI on the evaluation split for every model.

Keys of `results/metrics.json` (stable; later stages add entries beside these):
- `kmeans_pixels`: K-means on raw pixels, fit on train, applied to test (the floor);
- `pretext_kmeans`: K-means on SimCLR features, fit on train, applied to test;
- `cluster_head`: argmax of the cluster head C(F(x)) trained with Eq. 2.
Each entry is {"acc", "nmi", "ari"}.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans

from gccluster.data.prepare import PreparedDataset
from gccluster.features import extract_features, predict_clusters
from gccluster.metrics import clustering_scores
from gccluster.train.pseudolabel import assign_to_centers


def pixel_kmeans_predictions(data: PreparedDataset, n_clusters: int, n_init: int, seed: int) -> np.ndarray:
    """K-means on raw pixels scaled to [0, 1]: fit on the train split, predict the test split."""
    train = data.train.images.reshape(len(data.train.images), -1).astype(np.float32) / 255.0
    test = data.test.images.reshape(len(data.test.images), -1).astype(np.float32) / 255.0
    kmeans = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(train)
    return kmeans.predict(test)


def stage_one_metrics(
    data: PreparedDataset,
    backbone: torch.nn.Module,
    head: torch.nn.Module,
    centers: np.ndarray,
    device: torch.device,
    batch_size: int,
    pixel_kmeans_n_init: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    labels = data.test.labels
    features = extract_features(backbone, data.test.images, device, batch_size)
    return {
        "kmeans_pixels": clustering_scores(
            labels, pixel_kmeans_predictions(data, len(centers), pixel_kmeans_n_init, seed)
        ),
        "pretext_kmeans": clustering_scores(labels, assign_to_centers(features, centers)),
        "cluster_head": clustering_scores(labels, predict_clusters(head, features, device)),
    }
