"""Does L_d (Eq. 8-9) see the gap between real and generated images of a cluster at the batch
size it trains on? A label-free probe of `gcc.bandwidth`; it trains nothing.

    python benchmarks/ld_bandwidth_probe.py --project PATH --backbone B.pt --head C.pt \
        --bank BANK.npz [--real 4000] [--batches 100] [--batch-size 128] [--out probe.json]

Real images: `--real` train images of the project at PATH (its data/prepared), labelled by the
head's predictions ŷ = argmax C(F(x)) (no class label is read). Generated images: a bank
written by a round (results/<round>/bank.npz: images and their conditioning clusters). F in
eval mode, under the run's precision as `features.extract_features` applies it.

For each bandwidth σ:
- `median` (what `gcc.bandwidth: median` computes in training): the median pairwise distance
  in each mixed batch of real and generated features;
- `within`: the median distance between real images of one predicted cluster (one number for
  the whole probe), the scale on which real and generated images of a cluster differ;
the probe draws `--batches` training-like batches (`--batch-size` real images at random, each
paired with a generated image of its predicted cluster by training's own `BankPairing`, without
replacement within a batch, as `gcc.pairing: predicted` does) and
computes the training loss `mmd_per_cluster` (unbiased) on each, observed and under a null:
the same features with real/generated membership shuffled within each cluster (what L_d would
read if the two sides came from one distribution). It reports the observed and null means,
the fraction of batches whose observed L_d exceeds its own null, and the separation
(mean observed - mean null) / std of observed over batches: how much of L_d's value in one
batch is signal rather than sampling noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import typer

from gccluster.data.prepare import load_prepared
from gccluster.features import extract_features, predict_clusters
from gccluster.io import read_npz
from gccluster.losses.calibration import median_bandwidth, mmd_per_cluster
from gccluster.machine import cpu_name
from gccluster.models.loading import load_clustering_branch
from gccluster.train.calibrate import BankPairing

app = typer.Typer(add_completion=False)


def within_cluster_median(features: torch.Tensor, clusters: torch.Tensor) -> float:
    """Median Euclidean distance over all pairs of distinct images that share a cluster."""
    distances = [torch.pdist(features[clusters == k]) for k in torch.unique(clusters).tolist()
                 if int((clusters == k).sum()) >= 2]
    return float(torch.cat(distances).median())


def shuffled_sides(real: torch.Tensor, real_clusters: torch.Tensor, generated: torch.Tensor,
                   generated_clusters: torch.Tensor, generator: torch.Generator):
    """The null: within each cluster, the pooled real and generated features split again at
    random into groups of the observed sizes."""
    features = torch.cat([real, generated])
    clusters = torch.cat([real_clusters, generated_clusters])
    is_real = torch.cat([torch.ones(len(real), dtype=torch.bool), torch.zeros(len(generated), dtype=torch.bool)])
    shuffled = is_real.clone()
    for k in torch.unique(clusters).tolist():
        members = torch.nonzero(clusters == k).flatten()
        shuffled[members] = is_real[members][torch.randperm(len(members), generator=generator)]
    return features[shuffled], clusters[shuffled], features[~shuffled], clusters[~shuffled]


def training_like_batch(real_clusters: torch.Tensor, pairing: BankPairing, batch_size: int,
                        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of `batch_size` random real images (those whose cluster has generated images) and
    generated indices paired with them by training's own `BankPairing`: without replacement
    within the batch, so no generated image counts twice in one batch's L_d (a repeat would
    raise L_d's generated-generated term and not its null's)."""
    rows = torch.randperm(len(real_clusters), generator=generator)[:batch_size]
    has_pool = torch.tensor([len(members) > 0 for members in pairing.members])
    rows = rows[has_pool[real_clusters[rows]]]
    return rows, pairing.draw(real_clusters[rows], generator)


def probe_bandwidth(real: torch.Tensor, real_clusters: torch.Tensor, generated: torch.Tensor,
                    generated_clusters: torch.Tensor, sigma: str | float, batches: int, batch_size: int,
                    generator: torch.Generator) -> dict:
    """Observed and null L_d over training-like batches at one bandwidth (`median` = per batch)."""
    pairing = BankPairing(generated_clusters, int(max(real_clusters.max(), generated_clusters.max())) + 1)
    observed, null, sigmas = [], [], []
    for _ in range(batches):
        rows, picks = training_like_batch(real_clusters, pairing, batch_size, generator)
        f_r, y_r = real[rows], real_clusters[rows]
        f_g, y_g = generated[picks], generated_clusters[picks]
        bandwidth = median_bandwidth(torch.cat([f_r, f_g])) if sigma == "median" else sigma
        sigmas.append(float(bandwidth))
        observed.append(float(mmd_per_cluster(f_r, y_r, f_g, y_g, bandwidth, "unbiased")))
        null.append(float(mmd_per_cluster(*shuffled_sides(f_r, y_r, f_g, y_g, generator), bandwidth, "unbiased")))
    observed_a, null_a = np.array(observed), np.array(null)
    return {
        "sigma_mean": round(float(np.mean(sigmas)), 4),
        "ld_observed_mean": round(float(observed_a.mean()), 5),
        "ld_null_mean": round(float(null_a.mean()), 5),
        "batches_observed_above_null": round(float(np.mean(observed_a > null_a)), 3),
        "separation": round(float((observed_a.mean() - null_a.mean()) / max(observed_a.std(), 1e-12)), 3),
    }


@app.command()
def main(project: Path = typer.Option(..., help="a project whose data stage has run"),
         backbone: Path = typer.Option(..., help="F: a backbone.pt"),
         head: Path = typer.Option(..., help="C: a cluster_head.pt that reads that backbone"),
         bank: Path = typer.Option(..., help="a round's bank.npz (images, labels)"),
         real: int = typer.Option(4000, help="train images drawn as the real side"),
         batches: int = typer.Option(100, help="training-like batches per bandwidth"),
         batch_size: int = typer.Option(128, help="real images per batch (gcc.batch_size)"),
         precision: str = typer.Option("auto", help="as base.precision"),
         seed: int = typer.Option(0),
         out: Path = typer.Option(None, help="write the result as JSON")) -> None:
    generator = torch.Generator().manual_seed(seed)
    device = torch.device("cpu")
    data = load_prepared(project / "data" / "prepared")
    images = data.train.images
    rows = torch.randperm(len(images), generator=generator)[: min(real, len(images))].numpy()
    f_branch, c_branch = load_clustering_branch(backbone, head)
    f_real_np = extract_features(f_branch, images[np.sort(rows)], device, precision=precision)
    y_real = torch.from_numpy(predict_clusters(c_branch, f_real_np, device))
    drawn = read_npz(bank, ("images", "labels"), "bank")
    f_gen = torch.from_numpy(extract_features(f_branch, drawn["images"], device, precision=precision))
    y_gen = torch.from_numpy(np.asarray(drawn["labels"])).long()
    f_real = torch.from_numpy(f_real_np)
    within = within_cluster_median(f_real, y_real)
    result = {"cpu": cpu_name(), "backbone": str(backbone), "head": str(head), "bank": str(bank),
              "real_images": len(f_real), "generated_images": len(f_gen), "batch_size": batch_size,
              "batches": batches, "within_cluster_median": round(within, 4), "bandwidths": {}}
    for name, sigma in (("median", "median"), ("within", within)):
        result["bandwidths"][name] = probe_bandwidth(f_real, y_real, f_gen, y_gen, sigma, batches, batch_size,
                                                     generator)
        print(name, result["bandwidths"][name])
    if out:
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    app()
