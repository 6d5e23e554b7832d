"""Seeding, device choice and progress bars: the run-time settings every stage shares."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterable
from contextlib import nullcontext

import numpy as np
import torch
from tqdm.auto import tqdm

from gccluster.distributed import worker_device, world
from gccluster.errors import UserError
from gccluster.machine import cpu_has_native_bf16


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def derive_seed(seed: int, *names: str) -> int:
    """A seed for one named consumer of `base.seed` (e.g. a round, or its held-out draw):
    stable across runs and machines, different per name, and independent of which other
    consumers exist (adding a round does not change another round's seed)."""
    digest = hashlib.sha256("/".join([str(seed), *names]).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def resolve_device(name: str) -> torch.device:
    """`auto` = CUDA when present, else CPU; `cuda` without a GPU is a user error. A
    torchrun worker on CUDA gets its own GPU, cuda:LOCAL_RANK."""
    if name == "auto":
        return worker_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("base.device = 'cuda' but no CUDA device is available (allowed: auto, cpu)")
    return worker_device(torch.device(name))


def use_bf16(device: torch.device, precision: str) -> bool:
    """Whether training and sampling run under bf16 autocast (`base.precision`).

    `auto` = bf16 on CUDA and on CPUs with native bf16 (`machine.cpu_has_native_bf16`: AMX or
    AVX512-BF16; measured on this project's 2-core Xeon with AMX: about 4x faster for the
    SimCLR step, 2.5x for DRC's, 1.5x for the DDPM's; on a 2-core AMD EPYC with AVX512-BF16:
    2.5x, 2.2x and 1.4x, every step kind of the default faster), fp32 on every other CPU (bf16
    is emulated and slower there). So one machine gives one set of numbers; CPUs of different
    kinds differ in precision as well as in kernels, which is why the README names the CPU
    beside every result. `bf16` and `fp32` force one on any device.
    """
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return precision == "bf16"


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast where `use_bf16` says so, else a no-op context."""
    if use_bf16(device, precision):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def conv_memory_format(device: torch.device, precision: str) -> torch.memory_format:
    """channels_last for CNNs on CUDA and under CPU bf16 (oneDNN's fast path; 1.5x measured
    for the small CNN on an AMX CPU), contiguous for fp32 on a CPU."""
    if device.type == "cuda" or use_bf16(device, precision):
        return torch.channels_last
    return torch.contiguous_format


def step_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """The generator for the random draws of one training step or sampling call on `device`.

    CPU: the stage's own `generator` (results as before). CUDA: a generator on the GPU,
    seeded by one draw from `generator`, so that noise is drawn on the GPU instead of on the
    host and copied over at every step (a host-to-device copy from pageable memory waits for
    the GPU), while every draw stays a function of the consumer's own generator: a held-out
    sample drawn with a generator of its own does not depend on what the stage drew before,
    and a resumed stage (whose CPU generator state is saved) draws the same numbers.
    """
    if device.type == "cpu":
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def progress(iterable: Iterable, **kwargs) -> Iterable:
    """A tqdm bar, silent under CI=true and on every torchrun worker but the first."""
    disable = os.environ.get("CI", "").lower() in {"1", "true", "yes"} or not world().is_main
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
