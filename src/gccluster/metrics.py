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
