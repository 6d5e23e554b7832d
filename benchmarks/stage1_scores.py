"""Stage I alone: label-free diagnostics and test scores of a project whose `pseudolabel`
stage has run (`dvc repro pseudolabel`), without the DDPM or the rounds.

For a long Stage I (Fashion-MNIST on a CPU) this answers "are the features any good?"
before hours of Stage II. Prints and writes JSON (default results/stage1_scores.json):
K-means stability in both spaces (F(x) and g(F(x)); label-free), then, from the test
labels and for reporting only, pretext + K-means (the stage's own centers, in its
`pseudolabel.kmeans_space`), the cluster head C, and optionally K-means on raw pixels.

    cd PROJECT && python /path/to/benchmarks/stage1_scores.py [--pixels]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import typer

from gccluster import paths
from gccluster.config import load_params
from gccluster.data.prepare import load_prepared
from gccluster.evaluation import pixel_kmeans_predictions
from gccluster.features import extract_features, kmeans_space_encoder, predict_clusters
from gccluster.io import read_npz, write_json
from gccluster.metrics import clustering_scores
from gccluster.models.loading import load_clustering_branch, load_projector
from gccluster.runtime import resolve_device
from gccluster.selection import kmeans_stability
from gccluster.train.pseudolabel import assign_to_centers


def main(
    out: Path = typer.Option(Path("results/stage1_scores.json"), "--out"),
    pixels: bool = typer.Option(False, "--pixels", help="also K-means on raw pixels (slow on 60k images)"),
) -> None:
    params = load_params(paths.PARAMS)
    device = resolve_device(params.base.device)
    data = load_prepared(paths.PREPARED_DIR)
    backbone, head = load_clustering_branch(paths.BACKBONE, paths.CLUSTER_HEAD)
    projector = load_projector(paths.PROJECTOR, backbone.feature_dim)
    kmeans = read_npz(paths.KMEANS, ("centers", "space"), "K-means centers and their space")
    k, seed, precision = params.pseudolabel.n_clusters, params.base.seed, params.base.precision
    scores: dict[str, object] = {"kmeans_space": str(kmeans["space"]), "kmeans_stability": {}}
    for space in ("backbone", "projection"):
        start = time.perf_counter()
        train = extract_features(kmeans_space_encoder(backbone, projector, space), data.train.images, device,
                                 precision=precision)
        scores["kmeans_stability"][space] = round(kmeans_stability(train, k, seed=seed), 4)
        print(f"K-means stability, {space}: {scores['kmeans_stability'][space]} ({time.perf_counter() - start:.0f} s)")
    # Test labels from here on: reporting only.
    labels = data.test.labels
    used = kmeans_space_encoder(backbone, projector, str(kmeans["space"]))
    scores["pretext_kmeans"] = clustering_scores(
        labels, assign_to_centers(extract_features(used, data.test.images, device, precision=precision), kmeans["centers"]))
    scores["cluster_head"] = clustering_scores(
        labels, predict_clusters(head, extract_features(backbone, data.test.images, device, precision=precision), device))
    if pixels:
        scores["kmeans_pixels"] = clustering_scores(
            labels, pixel_kmeans_predictions(data, k, params.evaluate.pixel_kmeans_n_init, seed))
    write_json(out, scores)
    print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    typer.run(main)
