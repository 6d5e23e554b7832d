"""Does G lose its conditioning over the rounds? Draws of successive generators read through
one fixed clustering branch (label-free; trains and samples nothing).

    python benchmarks/generator_drift_probe.py --backbone B.pt --head C.pt \
        --draw G0=results/r1/bank.npz --draw G1=results/r1/samples.npz ... [--out probe.json]

Each round's held-out agreement (README, "Results on the default") reads the round's G
through the round's own F and C, so a fall mixes G's change with F's. Here one F, C (say
Stage I's) reads every generator's draw: r1's bank comes from Stage I's G (r1 trains with
it), `results/<round>/samples.npz` from the round's fine-tuned G. Per draw:
- agreement: the fraction of images that C(F(.)) assigns to the cluster they were generated
  for;
- silhouette: the cosine silhouette of F(.) grouped by the conditioning cluster (on up to
  `--max-silhouette` images), how separate the clusters G draws are in this fixed F.
With `--project`, the silhouette of real train images grouped by the branch's own predictions
is printed first, as the scale of a real clustering; and each `--relabel NAME=B.pt,C.pt`
(a round's F and C) gives the fraction of train images that branch puts in another cluster
than the fixed one does (cluster ids carry over between rounds: C is fine-tuned, never
re-initialised), and the cosine silhouette of the real train images in the fixed F grouped by
that branch's clusters. A round's G is fine-tuned on that round's labels, so this part of a
fall in agreement is the labels moving, not G forgetting; and a draw's silhouette is to be
read against the real images' under the same labels: only a fall beyond that one says G's
clusters blur.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import typer
from sklearn.metrics import silhouette_score

from gccluster.data.prepare import load_prepared
from gccluster.features import extract_features, predict_clusters
from gccluster.io import read_npz
from gccluster.machine import cpu_name
from gccluster.models.loading import load_clustering_branch

app = typer.Typer(add_completion=False)


def draw_scores(features: np.ndarray, predicted: np.ndarray, conditioned: np.ndarray, max_silhouette: int,
                seed: int) -> dict:
    """Agreement of predictions with the conditioning clusters, and the cosine silhouette of
    the features grouped by the conditioning clusters (a random subset of `max_silhouette`)."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(features))[:max_silhouette]
    return {"images": len(features), "agreement": round(float(np.mean(predicted == conditioned)), 4),
            "silhouette_cosine": round(float(silhouette_score(features[rows], conditioned[rows], metric="cosine")), 4)}


@app.command()
def main(backbone: Path = typer.Option(..., help="the fixed F: a backbone.pt"),
         head: Path = typer.Option(..., help="the fixed C: a cluster_head.pt for that backbone"),
         draw: list[str] = typer.Option(..., help="NAME=an npz with images and labels (a bank or samples)"),
         project: Path = typer.Option(None, help="a project whose data stage has run: real images for scale"),
         relabel: list[str] = typer.Option([], help="NAME=backbone.pt,cluster_head.pt (needs --project)"),
         max_silhouette: int = typer.Option(2000),
         precision: str = typer.Option("auto", help="as base.precision"),
         seed: int = typer.Option(0),
         out: Path = typer.Option(None, help="write the result as JSON")) -> None:
    device = torch.device("cpu")
    f_branch, c_branch = load_clustering_branch(backbone, head)
    result = {"cpu": cpu_name(), "backbone": str(backbone), "head": str(head), "draws": {}}
    if project is not None:
        images = load_prepared(project / "data" / "prepared").train.images
        features = extract_features(f_branch, images, device, precision=precision)
        predicted = predict_clusters(c_branch, features, device)
        scores = draw_scores(features, predicted, predicted, max_silhouette, seed)
        result["real_train"] = {k: v for k, v in scores.items() if k != "agreement"}  # 1 by construction
        print("real train (own predictions)", result["real_train"])
        result["relabelled"], result["real_train_by_round"] = {}, {}
        for spec in relabel:
            name, files = spec.split("=", 1)
            other_f, other_c = load_clustering_branch(*files.split(","))
            other = predict_clusters(other_c, extract_features(other_f, images, device, precision=precision), device)
            result["relabelled"][name] = round(float(np.mean(other != predicted)), 4)
            # The control for a draw's silhouette: real images grouped by the labels that
            # round's G was fine-tuned on, in the same fixed F.
            result["real_train_by_round"][name] = draw_scores(features, other, other, max_silhouette,
                                                              seed)["silhouette_cosine"]
            print(f"train images relabelled by {name}: {result['relabelled'][name]}; their silhouette in the "
                  f"fixed F by {name}'s clusters: {result['real_train_by_round'][name]}")
    for spec in draw:
        name, path = spec.split("=", 1)
        drawn = read_npz(Path(path), ("images", "labels"), name)
        features = extract_features(f_branch, drawn["images"], device, precision=precision)
        predicted = predict_clusters(c_branch, features, device)
        result["draws"][name] = {"file": path, **draw_scores(features, predicted, np.asarray(drawn["labels"]),
                                                             max_silhouette, seed)}
        print(name, result["draws"][name])
    if out:
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    app()
