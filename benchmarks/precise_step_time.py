"""Time of the precise-feature method's three update kinds (Algorithm 1) on this machine, fp32
and bf16: one critic step (Eq. 5, with the gradient penalty's double backward), one classifier
step (Eq. 6) and one generator step (Eq. 7); from them one generator iteration (n_critic +
n_class + 1 steps) and the paper's time claim: 900,000 iterations in 38 h on a GTX 1080 Ti
(0.152 s per iteration at width 64, batch 100).

Run alone (another PyTorch job on the same cores slows both by up to 10x):

    python benchmarks/precise_step_time.py [--size 16] [--width 16] [--batch-size 64] [--out times.json]

The steps are the training loop's own functions (gccluster.baselines.precise.method) on
random images; the first `--warmup` calls are not timed (oneDNN picks kernels on first use).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import typer
from torch import nn

from gccluster.baselines.precise import method as precise
from gccluster.baselines.precise.model import PreciseClusterer, PreciseCritic
from gccluster.baselines.precise.params import PreciseConfig
from gccluster.machine import cpu_name
from gccluster.runtime import conv_memory_format, step_generator

app = typer.Typer(add_completion=False)
PAPER_SECONDS_PER_ITERATION = 38 * 3600 / 900_000


def median_ms(times: list[float]) -> float:
    return round(1000 * float(np.median(times)), 2)


def time_steps(size: int, dataset: str, precision: str, steps: int, warmup: int, cfg: PreciseConfig,
               device: torch.device = torch.device("cpu")) -> dict:
    """Median step times on `device`; the `float(loss)` after each step waits for the device.
    `dataset` is taken for the signature the four step-time scripts share: the method draws no
    augmented views."""
    torch.manual_seed(0)
    networks = nn.ModuleDict({"clusterer": PreciseClusterer(size, 1, 10, cfg.width, cfg.noise_dim),
                              "critic": PreciseCritic(size, 1, cfg.width)})
    networks.to(device, memory_format=conv_memory_format(device, precision))
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.9), fused=True)
                  for name, net in (("g", networks["clusterer"].generator), ("d", networks["critic"]),
                                    ("c", networks["clusterer"].classifier))}
    draw = step_generator(torch.Generator().manual_seed(0), device)  # as the training loop's draws
    real = torch.rand(cfg.batch_size, 1, size, size, device=device)
    calls = {
        "critic": lambda: precise._critic_step(networks, optimizers["d"], real, cfg, 10, device, precision, draw),
        "classifier": lambda: precise._classifier_step(networks, optimizers["c"], cfg, 10, device, precision, draw),
        "generator": lambda: precise._generator_step(networks, optimizers["g"], cfg, 10, 10.0, device, precision,
                                                     draw),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(warmup + steps):
        for name, call in calls.items():
            start = time.perf_counter()
            losses = call()
            float(next(iter(losses.values())))
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    per_iteration = (cfg.n_critic * np.median(times["critic"]) + cfg.n_class * np.median(times["classifier"])
                     + np.median(times["generator"]))
    return {**{f"{name}_ms": median_ms(values) for name, values in times.items()},
            "iteration_s": round(float(per_iteration), 4),
            "iterations_per_s": round(1.0 / float(per_iteration), 2),
            "hours_per_10k": round(10_000 * float(per_iteration) / 3600, 2),
            "hours_per_900k": round(900_000 * float(per_iteration) / 3600, 1)}


@app.command()
def main(size: int = typer.Option(16, help="image side (16: digits, 28: Fashion-MNIST)"),
         width: int = typer.Option(16, help="DIM of Fig. 2 (paper 64)"),
         batch_size: int = typer.Option(64, help="n (code: 100)"),
         steps: int = typer.Option(20), warmup: int = typer.Option(3),
         out: Path = typer.Option(None, help="write the numbers as JSON")) -> None:
    cfg = PreciseConfig(width=width, batch_size=batch_size)
    result = {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(), "size": size,
              "width": width, "batch_size": batch_size, "n_critic": cfg.n_critic, "n_class": cfg.n_class,
              "paper_s_per_iteration_gtx1080ti": round(PAPER_SECONDS_PER_ITERATION, 3)}
    for precision in ("fp32", "bf16"):
        result[precision] = time_steps(size, "", precision, steps, warmup, cfg)  # no views: no dataset
        print(precision, json.dumps(result[precision]), flush=True)
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    app()
