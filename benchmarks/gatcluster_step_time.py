"""Time of GATCluster's two steps (Algorithm 1) on this machine, fp32 and bf16, at the preset
sizes: Step 1 on one big batch of M images (label features in eval mode, the targets of Eq. 5
and 11, k-means for Eq. 6) and one Step-2 Adam step on a sub-batch of 32 augmented images;
from them the time of one iteration (Step 1, the views, and 8 x floor(M / 32) steps).

Run alone (another PyTorch job on the same cores slows both by up to 10x):

    python benchmarks/gatcluster_step_time.py [--size 16] [--steps 30] [--out times.json]

The steps are the training loop's own functions (gccluster.baselines.gatcluster.method) on
random images; the first `--warmup` calls are not timed (oneDNN picks kernels on first use).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import typer

from gccluster.baselines.gatcluster import method as gat
from gccluster.baselines.gatcluster.model import GATClusterClusterer, to_grey
from gccluster.baselines.gatcluster.params import GATClusterConfig
from gccluster.machine import cpu_name
from gccluster.runtime import conv_memory_format

app = typer.Typer(add_completion=False)


def median_ms(times: list[float]) -> float:
    return round(1000 * float(np.median(times)), 1)


def time_steps(size: int, dataset: str, precision: str, steps: int, warmup: int, cfg: GATClusterConfig,
               device: torch.device = torch.device("cpu")) -> dict:
    """Median times on `device`: Step 1 returns host values (it waits for the device), and
    the `float(loss)` after each Step-2 step does."""
    torch.manual_seed(0)
    big_batch = cfg.resolved_big_batch(dataset, 10**9)
    clusterer = GATClusterClusterer(size, 10, cfg.width, cfg.am, cfg.alpha, cfg.attention, cfg.input_range)
    clusterer.to(device, memory_format=conv_memory_format(device, precision))
    network = clusterer.network
    optimizer = torch.optim.Adam(network.parameters(), lr=cfg.lr, fused=True)
    augment = gat.augmented_views(cfg, dataset, 1).to(device)
    generator = torch.Generator().manual_seed(0)
    batch = torch.rand(big_batch, 1, size, size, device=device)
    target_times, view_times = [], []
    for i in range(warmup + max(3, steps // 10)):
        start = time.perf_counter()
        targets = gat._targets(network, batch, cfg, 10, device, precision, generator)
        middle = time.perf_counter()
        with torch.no_grad():
            views = to_grey(augment(batch))
        if i >= warmup:
            target_times.append(middle - start)
            view_times.append(time.perf_counter() - middle)
    network.train()

    def forward(x):  # the training loop's own forward: label features and attention
        return network(x, with_attention=cfg.am)[:2]

    step_times = []
    for i in range(warmup + steps):
        rows = torch.randperm(big_batch, generator=generator)[: cfg.sub_batch].to(device)
        start = time.perf_counter()
        losses = gat._step(forward, optimizer, views, targets, rows, cfg, cfg.weights(), device, precision)
        float(losses["loss"])
        if i >= warmup:
            step_times.append(time.perf_counter() - start)
    per_iteration = (np.median(target_times) + np.median(view_times)
                     + cfg.repeats * (big_batch // cfg.sub_batch) * np.median(step_times))
    return {"big_batch": big_batch, "step1_ms": median_ms(target_times), "views_ms": median_ms(view_times),
            "step2_ms": median_ms(step_times), "iteration_s": round(float(per_iteration), 2)}


@app.command()
def main(size: int = typer.Option(16, help="image side (16: digits, 28: Fashion-MNIST)"),
         steps: int = typer.Option(30), warmup: int = typer.Option(3),
         out: Path = typer.Option(None, help="write the numbers as JSON")) -> None:
    cfg = GATClusterConfig()
    dataset = "digits" if size == 16 else "fashion_mnist"
    result = {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(), "size": size,
              "sub_batch": cfg.sub_batch, "repeats": cfg.repeats, "width": cfg.width}
    for precision in ("fp32", "bf16"):
        result[precision] = time_steps(size, dataset, precision, steps, warmup, cfg)
        print(precision, json.dumps(result[precision]), flush=True)
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    app()
