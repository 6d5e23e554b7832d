"""Seeding, device choice and progress bars: the run-time settings every stage shares."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm

from gccluster.errors import UserError


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def resolve_device(name: str) -> torch.device:
    """`auto` = CUDA when present, else CPU; `cuda` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("base.device = 'cuda' but no CUDA device is available (allowed: auto, cpu)")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA; full precision on CPU (where bf16 is slow and changes results)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def progress(iterable: Iterable, **kwargs) -> Iterable:
    """A tqdm bar, silent under CI=true."""
    disable = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kwargs)


def images_to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) -> uint8 (N, C, H, W) on `device` (converted to float per batch)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)


def to_model_input(batch_uint8_or_unit: torch.Tensor) -> torch.Tensor:
    """Map uint8 [0, 255] or float [0, 1] images to the float [-1, 1] range models see."""
    x = batch_uint8_or_unit
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    return x * 2.0 - 1.0
