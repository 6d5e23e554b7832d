"""ACC/NMI/ARI: invariants and an independent brute-force ACC."""

import itertools

import numpy as np
import pytest

from gccluster.metrics import cluster_accuracy, clustering_scores


def brute_force_accuracy(y_true, y_pred, k):
    """Best accuracy over every one-to-one relabelling of k clusters (k! maps)."""
    best = 0.0
    for perm in itertools.permutations(range(k)):
        best = max(best, float(np.mean(np.array(perm)[y_pred] == y_true)))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_accuracy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 5, size=60)
    y_pred = np.where(rng.random(60) < 0.6, (y_true + 2) % 5, rng.integers(0, 5, size=60))
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(brute_force_accuracy(y_true, y_pred, 5))


def test_perfect_clustering_under_permutation_scores_one():
    y_true = np.repeat(np.arange(4), 10)
    y_pred = np.array([3, 0, 2, 1])[y_true]
    assert clustering_scores(y_true, y_pred) == {"acc": 1.0, "nmi": 1.0, "ari": 1.0}


def test_hand_computed_accuracy_with_more_clusters_than_classes():
    # Classes 0,0,1,1 ; clusters 0,1,2,2 -> best map: 2->1 and 0->0 (or 1->0): 3 of 4 right.
    assert cluster_accuracy(np.array([0, 0, 1, 1]), np.array([0, 1, 2, 2])) == pytest.approx(0.75)


def test_single_cluster_scores():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    scores = clustering_scores(y_true, np.zeros(6, dtype=int))
    assert scores["acc"] == pytest.approx(2 / 6, abs=1e-4)
    assert scores["nmi"] == 0.0
    assert scores["ari"] == 0.0
