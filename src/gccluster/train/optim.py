"""Optimisers, learning-rate schedules (pure functions of the epoch) and the loss guard."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from gccluster.config import OptimizerConfig
from gccluster.errors import NonFiniteLossError


def build_optimizer(parameters: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(
            parameters, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=False
        )
    return torch.optim.Adam(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay)


def cosine_factor(epoch: int, epochs: int) -> float:
    """Cosine decay of the learning rate from 1 at epoch 0 to 0 after the last epoch."""
    return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))


def constant_factor(epoch: int, epochs: int) -> float:
    return 1.0


SCHEDULES = {"cosine": cosine_factor, "constant": constant_factor}


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    factor = SCHEDULES[name]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: factor(epoch, epochs))


def check_finite(loss: torch.Tensor, stage: str, epoch: int, step: int, hint: str) -> None:
    """Stop on a NaN or infinite loss, naming where it happened."""
    if not torch.isfinite(loss.detach()).all():
        raise NonFiniteLossError(
            f"non-finite loss ({loss.item()}) in stage {stage} at epoch {epoch + 1}, step {step + 1}; {hint}"
        )
