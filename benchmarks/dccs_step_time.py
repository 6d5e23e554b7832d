"""Per-step time of DCCS's encoder step (Q+D, Eq. 12-13) and critic step (C, Eq. 14) on this
machine, at the paper's 28x28 architecture (official Encoder28) and batch 64, fp32 and bf16.

Run alone (another PyTorch job on the same cores slows both by up to 10x):

    python benchmarks/dccs_step_time.py [--size 28] [--steps 50] [--out times.json]

Both steps are the training loop's own functions (gccluster.baselines.dccs.method) on random
images; the first `--warmup` steps are not timed (oneDNN picks kernels on first use).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import typer
from torch import nn

from gccluster.baselines.dccs import method as dccs
from gccluster.baselines.dccs.losses import DCCSWeights
from gccluster.baselines.dccs.model import DCCSCritic, DCCSDiscriminator
from gccluster.baselines.dccs.params import DCCSConfig
from gccluster.data.augment import kornia_views
from gccluster.machine import cpu_name
from gccluster.runtime import step_generator

app = typer.Typer(add_completion=False)


def time_steps(size: int, dataset: str, precision: str, steps: int, warmup: int, cfg: DCCSConfig,
               device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Median step times of `cfg` at `size` px with `dataset`'s views on `device`; the
    `float(loss)` after each step waits for the device, so each step is timed whole."""
    torch.manual_seed(0)
    clusterer = dccs.DCCSClusterer(1, size, cfg.style_dim, 10)
    critic = DCCSCritic(cfg.style_dim + 10)
    discriminator = DCCSDiscriminator(clusterer.encoder.feature_dim, cfg.style_dim + 10)
    model = nn.ModuleDict({"clusterer": clusterer, "critic": critic, "discriminator": discriminator}).to(device)
    model.train()
    optimizer_q = torch.optim.Adam([*clusterer.parameters(), *discriminator.parameters()], lr=cfg.lr,
                                   betas=(0.5, 0.9), fused=True)
    optimizer_c = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.9), fused=True)
    weights = DCCSWeights(cfg.beta_mi, cfg.resolved_beta_aug(1), cfg.beta_adv)
    augment = kornia_views(dccs.view_spec(cfg, dataset), size).to(device)
    generator = step_generator(torch.Generator().manual_seed(0), device)  # as the training loop's draws
    batch = torch.rand(cfg.batch_size, 1, size, size, device=device)
    out = {}
    for name in ("encoder", "critic"):
        def step():
            if name == "encoder":
                losses = dccs._encoder_step(model, optimizer_q, augment, batch, weights, device, precision, generator)
                float(losses["loss"])
            else:
                loss, _ = dccs._critic_step(model, optimizer_c, batch, cfg, weights, 10, device, precision, generator,
                                            cfg.batch_size)
                float(loss)
        for _ in range(warmup):
            step()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        out[f"{name}_step_ms_median"] = round(1000 * float(np.median(times)), 2)
        out[f"{name}_step_ms_p10_p90"] = [round(1000 * float(np.percentile(times, q)), 2) for q in (10, 90)]
    # One cycle = n_critic critic steps + one encoder step; an epoch of 70,000 images = 1,093 batches.
    cycle = cfg.n_critic * out["critic_step_ms_median"] + out["encoder_step_ms_median"]
    out["ms_per_encoder_step_with_its_critic_steps"] = round(cycle, 1)
    out["s_per_70k_epoch"] = round(1093 / (cfg.n_critic + 1) * cycle / 1000, 1)
    return out


@app.command()
def main(size: int = typer.Option(28, help="image side (28: the official Encoder28)"),
         steps: int = typer.Option(50), warmup: int = typer.Option(5),
         out: Path = typer.Option(None, help="write the numbers as JSON")) -> None:
    device = torch.device("cpu")
    result = {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(), "size": size,
              "batch": DCCSConfig().batch_size}
    for precision in ("fp32", "bf16"):
        result[precision] = time_steps(size, "fashion_mnist", precision, steps, warmup, DCCSConfig(), device)
        print(precision, json.dumps(result[precision]), flush=True)
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    app()
