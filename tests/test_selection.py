"""The label-free selection criterion: K-means stability."""

from itertools import combinations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import normalize

from gccluster.selection import kmeans_stability


def test_stability_is_the_mean_pairwise_ari_of_seeded_runs():
    features = np.random.default_rng(0).normal(size=(120, 5))
    runs = [KMeans(n_clusters=4, n_init=1, random_state=7 + r).fit_predict(normalize(features)) for r in range(3)]
    expected = np.mean([adjusted_rand_score(a, b) for a, b in combinations(runs, 2)])
    assert kmeans_stability(features, 4, runs=3, seed=7) == pytest.approx(expected)


def test_clear_clusters_are_stable_structureless_features_are_not():
    rng = np.random.default_rng(1)
    directions = np.eye(6)[:4] * 10.0  # four well separated directions on the sphere
    clustered = np.repeat(directions, 50, axis=0) + rng.normal(scale=0.5, size=(200, 6))
    structureless = rng.normal(size=(200, 6))
    assert kmeans_stability(clustered, 4) > 0.99
    assert kmeans_stability(structureless, 4) < 0.8


def test_needs_two_runs():
    with pytest.raises(ValueError, match="at least 2"):
        kmeans_stability(np.zeros((10, 2)), 2, runs=1)
