"""Clustering metrics of the paper (4.1): Hungarian ACC, NMI and ARI.

Ground-truth labels are read only here and in figures, never by training code.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import entropy
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def cluster_accuracy(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """ACC: the accuracy under the best one-to-one map of clusters to classes (Hungarian).

    Works when the number of clusters differs from the number of classes: unmatched
    clusters count as wrong.
    """
    labels_true = np.asarray(labels_true)
    labels_pred = np.asarray(labels_pred)
    if labels_true.shape != labels_pred.shape or labels_true.ndim != 1:
        raise ValueError(f"label arrays must be 1-D and equal: {labels_true.shape} vs {labels_pred.shape}")
    counts = contingency_matrix(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / labels_true.size)


def clustering_scores(labels_true: np.ndarray, labels_pred: np.ndarray) -> dict[str, float]:
    """{"acc", "nmi", "ari"} rounded to 4 decimals (stable diffs in metrics.json)."""
    return {
        "acc": round(cluster_accuracy(labels_true, labels_pred), 4),
        "nmi": round(float(normalized_mutual_info_score(labels_true, labels_pred)), 4),
        "ari": round(float(adjusted_rand_score(labels_true, labels_pred)), 4),
    }


def cluster_balance(counts) -> float:
    """Entropy of the predicted cluster sizes divided by log K: 1 when every cluster is
    equally used, 0 when one cluster takes every image. Label-free (it reads predictions
    only), so training can watch its own predictions for collapse."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    if counts.size < 2 or counts.sum() <= 0:
        return 1.0
    return float(entropy(counts) / np.log(counts.size))


def silhouette(features: np.ndarray, clusters: np.ndarray, sample: int = 2000, seed: int = 0) -> float | None:
    """Mean silhouette (Rousseeuw 1987) of a partition of `features`, Euclidean: for each
    point, (b - a) / max(a, b), a its mean distance to its own cluster, b to the nearest other.
    Label-free: it reads the features and the predicted clusters only. On a random subset of
    `sample` points when there are more (scikit-learn's `sample_size`, seeded); None when the
    partition (or the subset) has fewer than 2 clusters or as many clusters as points."""
    from sklearn.metrics import silhouette_score

    clusters = np.asarray(clusters)
    n_used = len(np.unique(clusters))
    if n_used < 2 or n_used >= len(clusters):
        return None
    size = sample if len(clusters) > sample else None
    try:
        score = silhouette_score(np.asarray(features, dtype=np.float64), clusters, sample_size=size, random_state=seed)
    except ValueError:  # the random subset held a single cluster
        return None
    return round(float(score), 4)


def cluster_diagnostics(clusters: np.ndarray, n_clusters: int, features: np.ndarray, seed: int = 0) -> dict:
    """What can be said of a clustering without labels: the images per cluster (`sizes`),
    their `balance` (`cluster_balance`) and the `silhouette` of the features it was read from."""
    counts = np.bincount(np.asarray(clusters), minlength=n_clusters)
    return {
        "balance": round(cluster_balance(counts), 4),
        "silhouette": silhouette(features, clusters, seed=seed),
        "sizes": [int(c) for c in counts],
    }


def method_scores(labels: np.ndarray | None, clusters: np.ndarray, n_clusters: int, features: np.ndarray,
                  seed: int = 0) -> dict:
    """One method's entry of metrics.json: ACC/NMI/ARI when labels exist, then the label-free
    diagnostics."""
    scores = {} if labels is None else clustering_scores(labels, clusters)
    return {**scores, **cluster_diagnostics(clusters, n_clusters, features, seed)}
