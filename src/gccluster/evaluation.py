"""The `evaluate` stage's logic: ACC/NMI/ARI on the evaluation split for every model.

Keys of `results/metrics.json` (stable; later stages add entries beside these):
- `kmeans_pixels`: K-means on raw pixels, fit on train, applied to test (the floor);
- `pretext_kmeans`: K-means on SimCLR features, fit on train, applied to test;
- `cluster_head`: argmax of the cluster head C(F(x)) trained with Eq. 2;
- `rounds.<name>`: each GCC round's C(F(x)) after its fine-tuning, plus two label-free
  figures of agreement between the round's clustering branch and its generator:
  `heldout_agreement`, the fraction of a fresh draw from the round's *output* G (its own
  seed, never trained on: results/<round>/samples.npz) that the round's C(F(.)) assigns to
  the cluster it was generated for; and `train_bank_fit`, the same fraction on the bank
  that F and C were just trained on (drawn from the round's input G; L_ml's optimum is
  exactly this agreement, so it measures fit, not generalisation);
- `final`: the last round's scores (the GCC result).
Each entry holds {"acc", "nmi", "ari"}.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans

from gccluster.data.prepare import PreparedDataset
from gccluster.models.loading import load_clustering_branch
from gccluster.paths import RoundPaths
from gccluster.features import extract_features, predict_clusters
from gccluster.io import read_npz
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
    kmeans_encoder: torch.nn.Module,
    batch_size: int,
    pixel_kmeans_n_init: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """`kmeans_encoder` maps images to the space the K-means `centers` live in (F, or g∘F:
    `features.kmeans_space_encoder`)."""
    labels = data.test.labels
    features = extract_features(backbone, data.test.images, device, batch_size)
    kmeans_input = features if kmeans_encoder is backbone else extract_features(
        kmeans_encoder, data.test.images, device, batch_size)
    return {
        "kmeans_pixels": clustering_scores(
            labels, pixel_kmeans_predictions(data, len(centers), pixel_kmeans_n_init, seed)
        ),
        "pretext_kmeans": clustering_scores(labels, assign_to_centers(kmeans_input, centers)),
        "cluster_head": clustering_scores(labels, predict_clusters(head, features, device)),
    }


def head_scores(
    backbone: torch.nn.Module, head: torch.nn.Module, images: np.ndarray, labels: np.ndarray,
    device: torch.device, batch_size: int,
) -> dict[str, float]:
    features = extract_features(backbone, images, device, batch_size)
    return clustering_scores(labels, predict_clusters(head, features, device))


def generated_agreement(
    backbone: torch.nn.Module, head: torch.nn.Module, images: np.ndarray, labels: np.ndarray,
    device: torch.device, batch_size: int,
) -> float:
    """Fraction of generated images that C(F(.)) assigns to their conditioning cluster."""
    features = extract_features(backbone, images, device, batch_size)
    return round(float(np.mean(predict_clusters(head, features, device) == labels)), 4)


def round_metrics(
    data: PreparedDataset, chain: list[str], device: torch.device, batch_size: int
) -> dict[str, dict[str, float]]:
    out = {}
    for name in chain:
        files = RoundPaths(name)
        backbone, head = load_clustering_branch(files.backbone, files.cluster_head)
        scores = head_scores(backbone, head, data.test.images, data.test.labels, device, batch_size)
        for key, path, what in (("heldout_agreement", files.samples, "held-out samples"),
                                ("train_bank_fit", files.bank, "bank")):
            drawn = read_npz(path, ("images", "labels"), what)
            scores[key] = generated_agreement(backbone, head, drawn["images"], drawn["labels"], device, batch_size)
        out[name] = scores
    return out


def metrics_by_round(stage_one: dict, rounds: dict[str, dict[str, float]]) -> dict[str, list]:
    """Columns for `dvc plots`: step 0 is the Stage I head, step i the i-th round."""
    names = ["cluster_head", *rounds]
    rows = [stage_one["cluster_head"], *rounds.values()]
    return {
        "step": list(range(len(names))),
        "round": names,
        **{metric: [row[metric] for row in rows] for metric in ("acc", "nmi", "ari")},
    }
