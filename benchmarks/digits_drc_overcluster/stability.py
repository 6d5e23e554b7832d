"""Seed stability of DRC's final partitions on the train split, for DECLARED.md's rule.

    python benchmarks/digits_drc_overcluster/stability.py --project PATH \
        --arm with_head=A0.pt,A1.pt,A2.pt --arm without_head=B0.pt,B1.pt,B2.pt [--out F.json]

Reads the prepared data of the project at PATH (its data/prepared) and each model.pt written
by `baseline@drc`; prints, per arm, the mean adjusted Rand index between the seeds' train
partitions and each seed's train cluster balance. No label is read.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import torch
import typer
from sklearn.metrics import adjusted_rand_score

from gccluster.baselines.common import predict_images
from gccluster.baselines.drc.method import load
from gccluster.data.prepare import load_prepared
from gccluster.metrics import cluster_balance

app = typer.Typer(add_completion=False)


def seed_stability(partitions: list[np.ndarray]) -> float:
    """Mean adjusted Rand index over every pair of partitions of the same images."""
    pairs = list(itertools.combinations(partitions, 2))
    return float(np.mean([adjusted_rand_score(a, b) for a, b in pairs]))


def arm_summary(models: list[Path], images: np.ndarray) -> dict:
    loaded = [load(path) for path in models]
    n_clusters = loaded[0].network.heads[0].out_features
    partitions = [predict_images(model, images, torch.device("cpu")).clusters for model in loaded]
    balances = [cluster_balance(np.bincount(p, minlength=n_clusters)) for p in partitions]
    return {"models": [str(p) for p in models], "stability": round(seed_stability(partitions), 4),
            "train_balance": [round(float(b), 4) for b in balances]}


@app.command()
def main(project: Path = typer.Option(..., help="a project whose data stage has run"),
         arm: list[str] = typer.Option(..., help="NAME=model0.pt,model1.pt,..."),
         out: Path = typer.Option(None, help="write the summary as JSON")) -> None:
    data = load_prepared(project / "data" / "prepared")
    summary = {}
    for spec in arm:
        name, files = spec.split("=", 1)
        summary[name] = arm_summary([Path(f) for f in files.split(",")], data.train.images)
        print(f"{name}: stability {summary[name]['stability']:.4f}, train balance {summary[name]['train_balance']}")
    if out:
        out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    app()
