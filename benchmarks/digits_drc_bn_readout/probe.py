"""DRC's read-out with BatchNorm statistics re-estimated on the un-augmented train images, for
DECLARED.md's rule (written before this script).

    python benchmarks/digits_drc_bn_readout/probe.py --project PATH --models A0.pt,A1.pt,A2.pt \
        [--precision auto] [--out F.json]

For each trained `baseline@drc` model: the train partition as trained and after the
re-estimation (the candidate), the agreement (ARI) of the two, and per arm the rule's label-free
numbers: the mean adjusted Rand index over the pairs of seeds and each seed's train cluster
balance. Only then, for the reader and never to choose (DESIGN §9), each arm's test ACC / NMI /
ARI. Changes no file of the project.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np
import torch
import typer
from sklearn.metrics import adjusted_rand_score
from torch import nn

from gccluster.baselines.common import predict_images
from gccluster.baselines.drc.method import load
from gccluster.data.prepare import load_prepared
from gccluster.metrics import cluster_balance, clustering_scores
from gccluster.runtime import autocast, images_to_tensor, to_model_input

app = typer.Typer(add_completion=False)
BATCH = 256  # the training batch of originals


@torch.no_grad()
def reestimated(model: nn.Module, images: np.ndarray, precision: str) -> nn.Module:
    """A copy of `model` whose BatchNorm running statistics are the cumulative average
    (momentum=None) of train-mode batch statistics over `images`, in order, batches of 256,
    under the run's autocast."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    device = torch.device("cpu")
    data = images_to_tensor(images, device)
    for start in range(0, len(data), BATCH):
        with autocast(device, precision):
            model(to_model_input(data[start : start + BATCH]))
    return model.eval()


def stability(partitions: list[np.ndarray]) -> float:
    return float(np.mean([adjusted_rand_score(a, b) for a, b in itertools.combinations(partitions, 2)]))


@app.command()
def main(project: Path = typer.Option(..., help="a project whose data stage has run"),
         models: str = typer.Option(..., help="model0.pt,model1.pt,... (one per seed)"),
         precision: str = typer.Option("auto"),
         out: Path = typer.Option(None, help="write the summary as JSON")) -> None:
    data = load_prepared(project / "data" / "prepared")
    device = torch.device("cpu")
    arms = {"as_trained": [], "reestimated": []}
    for path in models.split(","):
        model = load(path)
        arms["as_trained"].append(model)
        arms["reestimated"].append(reestimated(model, data.train.images, precision))
    n_clusters = arms["as_trained"][0].network.heads[0].out_features
    summary: dict = {"models": models.split(","), "precision": precision}
    train_parts = {}
    for name, loaded in arms.items():
        parts = [predict_images(m, data.train.images, device, precision=precision).clusters for m in loaded]
        train_parts[name] = parts
        summary[name] = {"stability": round(stability(parts), 4),
                         "train_balance": [round(cluster_balance(np.bincount(p, minlength=n_clusters)), 4)
                                           for p in parts]}
        print(f"{name}: stability {summary[name]['stability']:.4f}, train balance {summary[name]['train_balance']}")
    summary["same_seed_agreement_ari"] = [round(float(adjusted_rand_score(a, b)), 4)
                                          for a, b in zip(train_parts["as_trained"], train_parts["reestimated"])]
    print("as trained vs re-estimated, per seed (train ARI):", summary["same_seed_agreement_ari"])
    # Labels from here on, to report only.
    for name, loaded in arms.items():
        scores = [clustering_scores(data.test.labels,
                                    predict_images(m, data.test.images, device, precision=precision).clusters)
                  for m in loaded]
        summary[name]["test"] = [{k: round(float(v), 4) for k, v in s.items()} for s in scores]
        print(f"{name} test:", summary[name]["test"])
    if out:
        out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    app()
