"""Optimisers, learning-rate schedules (pure functions of the epoch) and the loss guard."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from gccluster.config import OptimizerConfig
from gccluster.distributed import all_sum, world
from gccluster.errors import NonFiniteLossError


def fused_on(device: torch.device | str) -> bool | None:
    """`fused=` for torch.optim: one fused kernel per step on CUDA (instead of several
    launches per parameter tensor); None on the CPU, which keeps PyTorch's default there
    and so the CPU results of earlier runs."""
    return True if torch.device(device).type == "cuda" else None


def build_optimizer(parameters: Iterable[torch.nn.Parameter], cfg: OptimizerConfig,
                    device: torch.device | str = "cpu") -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(
            parameters, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=False,
            fused=fused_on(device),
        )
    return torch.optim.Adam(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused_on(device))


def adam(parameters: Iterable[torch.nn.Parameter], lr: float, device: torch.device | str) -> torch.optim.Adam:
    """Adam with PyTorch's defaults, fused on CUDA (`fused_on`)."""
    return torch.optim.Adam(parameters, lr=lr, fused=fused_on(device))


def cosine_factor(epoch: int, epochs: int) -> float:
    """Cosine decay of the learning rate from 1 at epoch 0 to 0 after the last epoch."""
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def constant_factor(epoch: int, epochs: int) -> float:
    return 1.0


SCHEDULES = {"cosine": cosine_factor, "constant": constant_factor}


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    factor = SCHEDULES[name]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: factor(epoch, epochs))


class EpochLosses:
    """One epoch's per-step losses, kept on the device until the epoch ends.

    A per-step `.item()` or finiteness test makes the host wait for the GPU at every step;
    here the losses are read once per epoch, where a non-finite one stops the stage naming
    its first step (`NonFiniteLossError`), as `check_finite` would have. The steps after
    it still ran, on parameters that are lost with the stage (it writes nothing and saves
    no resume state). On the CPU the numbers are those of per-step `.item()` sums.
    """

    def __init__(self, stage: str, epoch: int, hint: str, check: bool = True):
        self.stage, self.epoch, self.hint, self.check = stage, epoch, hint, check
        self.values: list[torch.Tensor] = []
        self.weights: list[float] = []
        self.steps: list[int] = []

    def add(self, loss: torch.Tensor, step: int, weight: float = 1.0) -> None:
        self.values.append(loss.detach().reshape(()))
        self.weights.append(weight)
        self.steps.append(step)

    def read(self) -> list[float]:
        """The epoch's losses as Python floats (one host sync), after the finiteness check
        (skipped with `check=False`, for parts of a loss whose sum is checked)."""
        if not self.values:
            return []
        values = torch.stack(self.values).double().cpu().tolist()
        for value, step in zip(values, self.steps):
            if self.check and not math.isfinite(value):
                raise NonFiniteLossError(
                    f"non-finite loss ({value}) in stage {self.stage} at epoch {self.epoch + 1}, "
                    f"step {step + 1}; {self.hint}"
                )
        return values

    def mean(self) -> float:
        """The weighted mean over the epoch's steps (weights: e.g. batch sizes), and under
        DDP over the ranks' steps too (a loss every rank computed on the gathered batch is
        the same on every rank, so its mean is unchanged; local means weighted by local
        image counts give the global mean). Every rank must call it, in the same order."""
        values = self.read()
        total = 0.0
        for value, weight in zip(values, self.weights):
            total += value * weight
        weights = float(sum(self.weights))
        if world().active:
            total, weights = all_sum(torch.tensor([total, weights], dtype=torch.float64)).tolist()
        return total / max(weights, 1e-300) if weights else 0.0


def check_finite(loss: torch.Tensor, stage: str, epoch: int, step: int, hint: str) -> None:
    """Stop on a NaN or infinite loss, naming where it happened."""
    if not torch.isfinite(loss.detach()).all():
        raise NonFiniteLossError(
            f"non-finite loss ({loss.item()}) in stage {stage} at epoch {epoch + 1}, step {step + 1}; {hint}"
        )
