"""Probe (issue 11, the rounds' drift): do the rounds' BatchNorm running statistics, learnt
from joint real + generated batches, misnormalise real images at evaluation?

Stage II puts real and generated images through F as one BatchNorm batch (`calibration_forward`),
so every round's running mean/var estimate the *mixture*, while evaluation (and ŷ during
training, `predict_batch`) runs F in eval mode on real images only. This script takes each
finished model of a project (Stage I's F and C, then every round in `gcc.rounds`) and reports,
without retraining anything:

- `bn_shift`: label-free. Per BatchNorm layer, the gap between the running statistics and the
  statistics of that layer's input over the real train split (fp32, eval-mode features
  before it), as mean over channels of |mu_run - mu_real| / sigma_real, and of
  |log(var_run / var_real)| / 2; the mean over layers is printed.
- the train-split silhouette of F(x) on its own predicted clusters (label-free; Euclidean, as
  every metrics.json, and cosine, the similarity Eq. 10 uses), with the
  running statistics as trained and after re-estimating them on real train images (train
  mode, no gradient, cumulative average over the whole split: `momentum=None`).
- test ACC/NMI/ARI both ways: for the reader only, never to pick anything (DESIGN §9).

Run it in a project whose `dvc repro` has finished (cwd = the project root):
    python benchmarks/bn_stats_probe.py [--out FILE.json]
For every round it also reads the round's bank (the generated images F and C trained on in
its last epoch, drawn from the G the round started from) and reports, for F before the round
and F after it: the cosine silhouette of the generated features by their conditioning
clusters, and the cross-validated accuracy of a linear probe telling real from generated
features (label-free: it uses the real/generated flag only).
It is a minute on digits, more on Fashion-MNIST; it changes no file of the project.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import typer
from torch import nn

from gccluster import paths
from gccluster.config import load_params, round_chain
from gccluster.data.prepare import load_prepared
from gccluster.features import extract_features, predict_clusters
from gccluster.io import read_npz
from gccluster.metrics import clustering_scores, silhouette
from gccluster.models.loading import load_clustering_branch
from gccluster.runtime import images_to_tensor, to_model_input

app = typer.Typer(add_completion=False)
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


@torch.no_grad()
def real_input_stats(backbone: nn.Module, images: np.ndarray, batch_size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Mean and (biased) variance per channel of every BatchNorm layer's input over `images`,
    with the network in eval mode (each layer sees what evaluation feeds it)."""
    sums: dict[str, list] = {}

    def hook(name):
        def record(module, inputs):
            x = inputs[0].float()
            dims = [0] if x.dim() == 2 else [0, 2, 3]
            count = x.numel() // x.shape[1]
            s, s2 = x.sum(dims).double(), x.pow(2).sum(dims).double()
            if name in sums:
                sums[name][0] += s
                sums[name][1] += s2
                sums[name][2] += count
            else:
                sums[name] = [s, s2, count]
        return record

    backbone.eval()
    handles = [m.register_forward_pre_hook(hook(n)) for n, m in backbone.named_modules() if isinstance(m, BN_TYPES)]
    data = images_to_tensor(images, torch.device("cpu"))
    for start in range(0, len(data), batch_size):
        backbone(to_model_input(data[start:start + batch_size]))
    for h in handles:
        h.remove()
    out = {}
    for name, (s, s2, count) in sums.items():
        mean = s / count
        out[name] = (mean.float(), (s2 / count - mean.pow(2)).clamp_min(0).float())
    return out


def bn_shift(backbone: nn.Module, real_stats: dict) -> dict[str, float]:
    """Mean over layers of the running statistics' distance from the real-image statistics."""
    mean_gaps, var_gaps = [], []
    for name, module in backbone.named_modules():
        if not isinstance(module, BN_TYPES):
            continue
        mu, var = real_stats[name]
        sd = var.clamp_min(1e-8).sqrt()
        mean_gaps.append(float(((module.running_mean - mu).abs() / sd).mean()))
        var_gaps.append(float((torch.log(module.running_var.clamp_min(1e-8) / var.clamp_min(1e-8)).abs() / 2).mean()))
    return {"mean_gap_sd": round(float(np.mean(mean_gaps)), 4), "log_sd_gap": round(float(np.mean(var_gaps)), 4)}


@torch.no_grad()
def reestimate_bn(backbone: nn.Module, images: np.ndarray, batch_size: int, seed: int) -> nn.Module:
    """A copy of `backbone` whose BatchNorm running statistics are the cumulative average of
    train-mode batch statistics over `images` (shuffled batches of `batch_size`)."""
    model = copy.deepcopy(backbone)
    for m in model.modules():
        if isinstance(m, BN_TYPES):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    data = images_to_tensor(images, torch.device("cpu"))
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(data), batch_size):
        rows = order[start:start + batch_size]
        if len(rows) >= 2:
            model(to_model_input(data[rows]))
    return model.eval()


def cosine_silhouette(features: np.ndarray, clusters: np.ndarray, seed: int, sample: int = 2000) -> float:
    from sklearn.metrics import silhouette_score

    size = sample if len(clusters) > sample else None
    return round(float(silhouette_score(features, clusters, metric="cosine", sample_size=size, random_state=seed)), 4)


def real_fake_separability(real: np.ndarray, fake: np.ndarray, seed: int) -> float:
    """Cross-validated accuracy (5 folds) of a logistic regression telling F's features of
    real images from those of generated ones, on equal counts: 0.5 when F cannot tell them
    apart (what L_d asks for, per cluster), 1.0 when the two sets are disjoint. It uses the
    real/generated flag, never a class label."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake), 5000)
    x = np.concatenate([real[rng.choice(len(real), n, replace=False)], fake[rng.choice(len(fake), n, replace=False)]])
    y = np.r_[np.zeros(n), np.ones(n)]
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return round(float(cross_val_score(probe, x, y, cv=5).mean()), 4)


def generated_geometry(backbone: nn.Module, bank: dict, real_train: np.ndarray, precision: str, batch_size: int,
                       seed: int) -> dict:
    """F on a round's bank (the images F and C trained on in its last epoch): the cosine
    silhouette of the generated features by their conditioning clusters, and how well a
    linear probe tells them from real train features."""
    cpu = torch.device("cpu")
    fake = extract_features(backbone, bank["images"], cpu, batch_size, precision=precision)
    real = extract_features(backbone, real_train, cpu, batch_size, precision=precision)
    return {"bank_silhouette_cosine": cosine_silhouette(fake, bank["labels"], seed),
            "real_vs_bank_separability": real_fake_separability(real, fake, seed)}


def scores(backbone, head, data, precision: str, batch_size: int, seed: int) -> dict:
    cpu = torch.device("cpu")
    out = {}
    for split in ("train", "test"):
        images = getattr(data, split).images
        features = extract_features(backbone, images, cpu, batch_size, precision=precision)
        clusters = predict_clusters(head, features, cpu)
        out[f"{split}_silhouette"] = silhouette(features, clusters, seed=seed)
        if split == "train":
            # Eq. 10 and the head read angles; a falling Euclidean silhouette with a steady
            # cosine one would mean only the feature norms spread.
            out["train_silhouette_cosine"] = cosine_silhouette(features, clusters, seed)
        if split == "test":
            out.update({f"test_{k}": round(v, 4) for k, v in clustering_scores(data.test.labels, clusters).items()})
        else:
            out["train_clusters"] = clusters
    return out


@app.command()
def main(out: Path = typer.Option(None, help="also write the table as JSON here")) -> None:
    params = load_params(paths.PARAMS)
    torch.manual_seed(params.base.seed)
    data = load_prepared(paths.PREPARED_DIR)
    precision, batch, seed = params.base.precision, params.evaluate.batch_size, params.base.seed
    models = {"head (Stage I)": (paths.BACKBONE, paths.CLUSTER_HEAD)}
    for name in round_chain(params.gcc.rounds):
        files = paths.RoundPaths(name)
        if not (files.backbone.exists() and files.cluster_head.exists() and files.bank.exists()):
            print(f"{name}: not finished, left out (and so is every later round)")
            break
        models[name] = (files.backbone, files.cluster_head)
    rows = {}
    names = list(models)
    for index, (name, (backbone_file, head_file)) in enumerate(models.items()):
        backbone, head = load_clustering_branch(backbone_file, head_file)
        backbone, head = backbone.cpu().eval(), head.cpu().eval()
        shift = bn_shift(backbone, real_input_stats(backbone, data.train.images, batch))
        as_trained = scores(backbone, head, data, precision, batch, seed)
        refit = scores(reestimate_bn(backbone, data.train.images, params.gcc.batch_size, seed), head, data,
                       precision, batch, seed)
        changed = float(np.mean(as_trained.pop("train_clusters") != refit.pop("train_clusters")))
        rows[name] = {"bn_shift": shift, "as_trained": as_trained, "bn_refit_on_real": refit,
                      "train_assignments_changed_by_refit": round(changed, 4)}
        # Round r's bank came from the G that round r started from: F before the round (the
        # previous model) and F after it, on the same generated images.
        for offset, key in ((0, "after_round_on_its_bank"), (1, "before_next_round_on_its_bank")):
            if index + offset >= 1 and index + offset < len(names):
                bank_round = names[index + offset]
                bank = read_npz(paths.RoundPaths(bank_round).bank, ("images", "labels"), "bank")
                rows[name][key] = {"bank": bank_round, **generated_geometry(
                    backbone, bank, data.train.images, precision, batch, seed)}
        geometry = {k: v for k, v in rows[name].items() if k.endswith("_bank")}
        print(f"{name:>15}: shift {shift}  changed {changed:.4f}  {geometry}\n"
              f"{'':>17}as trained {as_trained}\n{'':>17}refit      {refit}", flush=True)
    if out is not None:
        out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    app()
