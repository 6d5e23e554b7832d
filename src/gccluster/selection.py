"""Label-free model selection: choosing a setting without looking at any label (DESIGN.md §9).

The criterion we declared before comparing settings (README, "Label-free choices"):
K-means stability, the agreement between the partitions that independent K-means runs
find on the same features. Stability-based selection (Ben-Hur et al. 2002; Lange et al.
2004; von Luxburg 2010) rests on the idea that a real K-cluster structure is found again
from any start, while features without one give each run its own partition.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import normalize


def kmeans_stability(features: np.ndarray, n_clusters: int, runs: int = 10, seed: int = 0) -> float:
    """Mean adjusted Rand index over all pairs of `runs` K-means partitions of `features`.

    Each run is one K-means (one k-means++ start, scikit-learn) with its own seed, on the
    L2-normalised features (the geometry the pseudo labels use, `kmeans_pseudo_labels`). The
    ARI compares two partitions of the same images with each other, never with classes:
    1 = every run finds the same clusters; about 0 = the runs agree no more than chance.
    """
    if runs < 2:
        raise ValueError(f"runs must be at least 2 to compare partitions, got {runs}")
    unit = normalize(np.asarray(features, dtype=np.float64))
    partitions = [
        KMeans(n_clusters=n_clusters, n_init=1, random_state=seed + run).fit_predict(unit) for run in range(runs)
    ]
    return float(np.mean([adjusted_rand_score(a, b) for a, b in combinations(partitions, 2)]))


def kmeans_k_scan(features: np.ndarray, ks: list[int], n_init: int = 3, seed: int = 0,
                  sample: int = 2000) -> list[dict[str, float]]:
    """For each K: K-means inertia (for the elbow) and mean silhouette on the L2-normalised
    features, the geometry of the pseudo labels. A label-free guide to K for a folder of
    one's own images (`gccluster pick-k`): the elbow is where adding a cluster stops
    lowering the inertia much; a higher silhouette means tighter, better separated clusters."""
    from gccluster.metrics import silhouette

    unit = normalize(np.asarray(features, dtype=np.float64))
    rows = []
    for k in ks:
        if not 2 <= k < len(unit):
            raise ValueError(f"K = {k}: needs 2 <= K < {len(unit)} (the number of images)")
        kmeans = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(unit)
        rows.append({"k": k, "inertia": float(kmeans.inertia_),
                     "silhouette": silhouette(unit, kmeans.labels_, sample=sample, seed=seed)})
    return rows
