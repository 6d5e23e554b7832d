"""Probe (issue 11, Stage II): which of Eq. 12's three parts moves F, and does any of them
reach the real images?

Eq. 12 adds L_d (Eq. 9, per-cluster MMD between real and generated features: the only part
that touches real images), L_cwm (Eq. 10, generated images only) and L_ml (Eq. 11, generated
images through C) with weight 1 each. Adam normalises the *sum* of their gradients per
parameter, so what decides F's direction is how large each part's gradient is beside the
others, not its own scale. This script measures that at a model the rounds start from, on
real train batches paired with generated images exactly as `calibrate_clustering` pairs
them (`gcc.pairing`, `gcc.bandwidth`, `gcc.mmd_estimator`, `gcc.ml_scores`,
`gcc.ml_reduction` of the project's params), and reports per part:

- the norm of its weighted gradient on F's parameters and on C's parameters;
- the norm of its gradient on the real features F(x) and on the generated ones F(x̃)
  (L_cwm and L_ml give 0 on the real ones by construction);
- the cosine between the parts' gradients on F's parameters.

Everything it reads is label-free (the real/generated flag, the head's predictions, the
conditioning clusters); it trains nothing and writes nothing in the project.

Run it in a project whose Stage I (or the named round) has finished (cwd = project root):
    python benchmarks/stage2_gradient_balance.py [--model pseudolabel|<round>] [--batches 4]
        [--bank 500] [--out FILE.json]
The bank is drawn from the model's G (`diffusion.sampler`, `diffusion.sample_steps`) with
labels in proportion to the clusters C predicts on the train split, as a round draws it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import typer
from torch import nn

from gccluster import paths
from gccluster.config import load_params
from gccluster.data.prepare import load_prepared
from gccluster.features import extract_features, predict_clusters
from gccluster.losses.calibration import (
    cluster_wise_matching,
    head_scores,
    median_bandwidth,
    mmd_per_cluster,
    reliable_metric_loss,
)
from gccluster.models.loading import load_clustering_branch, load_unet
from gccluster.runtime import autocast, derive_seed, images_to_tensor, to_model_input
from gccluster.train.calibrate import BankPairing, calibration_forward, draw_bank, predict_batch

app = typer.Typer(add_completion=False)
PARTS = ("d", "cwm", "ml")


def flat_grad(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


def part_gradients(model: nn.ModuleDict, x_real: torch.Tensor, x_fake: torch.Tensor, predicted: torch.Tensor,
                   fake_clusters: torch.Tensor, cfg, precision: str, device: torch.device) -> dict:
    """One step's parts of Eq. 12 (as `calibrate_clustering` computes them) and their gradients."""
    f_params = list(model["backbone"].parameters())
    c_params = list(model["head"].parameters())
    with autocast(device, precision):
        f_real, f_fake, logits = calibration_forward(model, torch.cat([x_real, x_fake]), len(x_real))
        scores = head_scores(logits, cfg.ml_scores)
    bandwidth = median_bandwidth(torch.cat([f_real, f_fake])) if cfg.bandwidth == "median" else cfg.bandwidth
    weights = {"d": cfg.weights.d, "cwm": cfg.weights.cwm, "ml": cfg.weights.ml}
    parts = {
        "d": mmd_per_cluster(f_real, predicted, f_fake, fake_clusters, bandwidth, cfg.mmd_estimator),
        "cwm": cluster_wise_matching(f_fake, fake_clusters),
        "ml": reliable_metric_loss(scores, fake_clusters, cfg.ml_reduction),
    }
    out = {}
    for name, value in parts.items():
        loss = weights[name] * value
        if not loss.requires_grad:  # a part with no term in this batch
            out[name] = None
            continue
        g_real, g_fake = torch.autograd.grad(loss, [f_real, f_fake], retain_graph=True, allow_unused=True)
        out[name] = {
            "value": float(value.detach()),
            "grad_F": flat_grad(loss, f_params),
            "grad_C_norm": float(flat_grad(loss, c_params).norm()),
            "grad_real_features_norm": 0.0 if g_real is None else float(g_real.norm()),
            "grad_generated_features_norm": 0.0 if g_fake is None else float(g_fake.norm()),
        }
    return out


def summarise(steps: list[dict]) -> dict:
    """Per part: the mean over steps of each number; cosines between the parts' F-gradients."""
    summary = {}
    for name in PARTS:
        rows = [s[name] for s in steps if s[name] is not None]
        summary[name] = {key: round(float(np.mean([r[key] for r in rows])), 6)
                         for key in ("value", "grad_C_norm", "grad_real_features_norm", "grad_generated_features_norm")}
        summary[name]["grad_F_norm"] = round(float(np.mean([float(r["grad_F"].norm()) for r in rows])), 6)
    cosines = {}
    for i, a in enumerate(PARTS):
        for b in PARTS[i + 1:]:
            values = [float(torch.nn.functional.cosine_similarity(s[a]["grad_F"], s[b]["grad_F"], dim=0))
                      for s in steps if s[a] is not None and s[b] is not None]
            cosines[f"{a}~{b}"] = round(float(np.mean(values)), 4) if values else None
    total = sum(summary[name]["grad_F_norm"] for name in PARTS)
    share = {name: round(summary[name]["grad_F_norm"] / total, 4) for name in PARTS} if total else {}
    return {"parts": summary, "grad_F_cosines": cosines, "grad_F_norm_share": share}


@app.command()
def main(
    model: str = typer.Option("pseudolabel", help="'pseudolabel' (Stage I: where r1 starts) or a round name"),
    batches: int = typer.Option(4, help="real batches of gcc.batch_size to average over"),
    bank: int = typer.Option(500, help="generated images to draw for the pairing"),
    out: Path = typer.Option(None, help="also write the result as JSON here"),
) -> None:
    params = load_params(paths.PARAMS)
    cfg, precision = params.gcc, params.base.precision
    device = torch.device("cpu")
    backbone_file, head_file, unet_file = paths.round_inputs(model)
    backbone, head = load_clustering_branch(backbone_file, head_file)
    unet = load_unet(unet_file, expected_clusters=head.n_clusters)
    data = load_prepared(paths.PREPARED_DIR)
    generator = torch.Generator().manual_seed(derive_seed(params.base.seed, "gradient-balance", model))
    predicted_train = predict_clusters(head, extract_features(backbone, data.train.images, device,
                                                              precision=precision), device)
    drawn = draw_bank(unet, predicted_train, head.n_clusters, bank, params.diffusion, device, generator,
                      "probe bank", precision)
    fake = images_to_tensor(drawn.images, device)
    fake_labels = torch.from_numpy(drawn.labels)
    pairing = BankPairing(fake_labels, head.n_clusters)
    real = images_to_tensor(data.train.images, device)
    net = nn.ModuleDict({"backbone": backbone, "head": head}).train()
    order = torch.randperm(len(real), generator=generator)
    steps = []
    for step in range(batches):
        rows = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        x_real = to_model_input(real[rows])
        predicted = predict_batch(backbone, head, x_real)
        picks = (pairing.draw(predicted, generator) if cfg.pairing == "predicted"
                 else pairing.draw_uniform(len(rows), generator))
        steps.append(part_gradients(net, x_real, to_model_input(fake[picks]), predicted, fake_labels[picks],
                                    cfg, precision, device))
    result = {"model": model, "batches": batches, "bank": bank, "batch_size": cfg.batch_size,
              "ml_reduction": cfg.ml_reduction, "pairing": cfg.pairing, "precision": precision,
              **summarise(steps)}
    print(json.dumps(result, indent=1))
    if out is not None:
        out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    app()
