"""Per-step time of DRC's training step (trunk + one head on N originals and their repeated
augmented views, Eq. 10) on this machine, fp32 and bf16, at the preset sizes.

Run alone (another PyTorch job on the same cores slows both by up to 10x):

    python benchmarks/drc_step_time.py [--size 16] [--steps 20] [--out times.json]

The step is the training loop's own function (gccluster.baselines.drc.method._step) on random
images; the first `--warmup` steps are not timed (oneDNN picks kernels on first use).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import typer

from gccluster.baselines.drc import method as drc
from gccluster.baselines.drc.model import DRCClusterer
from gccluster.baselines.drc.params import DRCConfig
from gccluster.data.augment import kornia_views
from gccluster.machine import cpu_name
from gccluster.runtime import conv_memory_format, step_generator

app = typer.Typer(add_completion=False)


def time_steps(size: int, dataset: str, precision: str, steps: int, warmup: int, cfg: DRCConfig,
               device: torch.device = torch.device("cpu")) -> dict:
    """Median step time on `device`; the `float(loss)` after each step waits for the device."""
    torch.manual_seed(0)
    clusterer = DRCClusterer(1, size, 10, cfg.overcluster_k, cfg.backbone, cfg.width, False, cfg.test_zoom(1))
    clusterer.to(device, memory_format=conv_memory_format(device, precision)).train()
    optimizer = torch.optim.Adam(clusterer.network.parameters(), lr=cfg.lr, fused=True)
    augment = kornia_views(drc.augmented_view_spec(cfg, dataset, 1), size).to(device)
    generator = step_generator(torch.Generator().manual_seed(0), device)  # as the training loop's draws
    batch = torch.rand(cfg.batch_size, 1, size, size, device=device)

    def forward(originals, views, head):  # the training loop's own forward (one process)
        return drc.head_logits(clusterer.network, originals, views, head)

    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        losses, _ = drc._step(forward, 0, optimizer, augment, batch, cfg, device, precision, generator)
        float(losses["loss"])
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {"step_ms_median": round(1000 * median, 1),
            "step_ms_p10_p90": [round(1000 * float(np.percentile(times, q)), 1) for q in (10, 90)],
            "images_per_s": round(cfg.batch_size * (1 + cfg.repeats) / median)}


@app.command()
def main(size: int = typer.Option(16, help="image side (16: digits, 28: Fashion-MNIST)"),
         steps: int = typer.Option(20), warmup: int = typer.Option(3),
         out: Path = typer.Option(None, help="write the numbers as JSON")) -> None:
    cfg = DRCConfig()
    dataset = "digits" if size == 16 else "fashion_mnist"
    result = {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(), "size": size,
              "batch": cfg.batch_size, "repeats": cfg.repeats, "backbone": cfg.backbone, "width": cfg.width}
    for precision in ("fp32", "bf16"):
        result[precision] = time_steps(size, dataset, precision, steps, warmup, cfg)
        print(precision, json.dumps(result[precision]), flush=True)
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    app()
