"""The class-conditional DDPM G of GCC (Eq. 3-6), built on huggingface diffusers.

Why diffusers: its `UNet2DModel` already has what 4.1 describes (residual conv blocks with
dropout, a time embedding and a class embedding added to it via `num_class_embeds`), and
its DDPM/DDIM schedulers implement Ho et al.'s forward process and sampler, and DDIM's,
which we would otherwise re-derive. We keep the paper's quantities in named functions
here (`q_sample`, `diffusion_loss`, `sample_images`) and test them against the formulas.

Conventions: images are float in [-1, 1], shape (B, C, H, W); cluster labels are int64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gccluster.config import DiffusionConfig
from gccluster.distributed import backward_mean, data_parallel, rank_generator, require_rows_per_rank, shard, world
from gccluster.runtime import autocast, images_to_tensor, progress, step_generator, to_model_input
from gccluster.train.optim import EpochLosses, adam
from gccluster.train.resume import EpochCheckpointer, ResumeState


def unet_arch(cfg: DiffusionConfig, image_size: int, channels: int, n_clusters: int) -> dict:
    """Keyword arguments that rebuild the U-Net (stored in every DDPM checkpoint)."""
    return {
        "image_size": image_size,
        "channels": channels,
        "n_clusters": n_clusters,
        "block_channels": list(cfg.block_channels),
        "layers_per_block": cfg.layers_per_block,
        "dropout": cfg.dropout,
        "activation": cfg.activation,
    }


def build_unet(
    image_size: int,
    channels: int,
    n_clusters: int,
    block_channels: list[int],
    layers_per_block: int,
    dropout: float,
    activation: str,
) -> nn.Module:
    """ε_G(x_t, ŷ, t): a U-Net whose time embedding is summed with a learned cluster embedding."""
    from diffusers import UNet2DModel

    levels = len(block_channels)
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(block_channels),
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * levels,
        up_block_types=("UpBlock2D",) * levels,
        num_class_embeds=n_clusters,
        dropout=dropout,
        act_fn=activation,
        norm_num_groups=min(8, min(block_channels)),
    )


def make_scheduler(cfg: DiffusionConfig):
    """The forward process of Eq. 3: linear β_t from beta_start to beta_end over T steps."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=cfg.timesteps,
        beta_schedule="linear",
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
        prediction_type="epsilon",
        clip_sample=cfg.clip_sample,
    )


def q_sample(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Eq. 3 in closed form: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, ᾱ_t = Π_{s<=t} (1 - β_s).

    The paper prints (1 - α_t) ε for the noise term; the standard DDPM (and this code) use
    its square root, which is what makes q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 - ᾱ_t) I).
    """
    return scheduler.add_noise(x0, noise, t)


def diffusion_loss(
    unet: nn.Module, scheduler, x0: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Eq. 6: E_{x0, ε, t} || ε - ε_G(x_t, ŷ, t) ||², t uniform on {0..T-1}, ε ~ N(0, I).

    The expectation is the mean over the batch and over pixels (Ho et al.'s simple loss).
    t and ε are drawn by `generator` on the CPU, by the device's generator on a GPU
    (`runtime.step_generator`).
    """
    batch, device = x0.shape[0], x0.device
    draws = step_generator(generator, device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=draws, device=device)
    noise = torch.randn(x0.shape, generator=draws, device=device)
    x_t = q_sample(scheduler, x0, noise, t)
    predicted = unet(x_t, t, class_labels=labels).sample
    return torch.mean((noise.float() - predicted.float()) ** 2)


@dataclass
class DiffusionResult:
    unet: nn.Module
    epoch_loss: list[float]


def train_diffusion(
    unet: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    cfg: DiffusionConfig,
    epochs: int,
    lr: float,
    device: torch.device,
    generator: torch.Generator,
    stage: str,
    checkpointer: EpochCheckpointer | None = None,
    precision: str = "auto",
) -> DiffusionResult:
    """Fit ε_G with Eq. 6 on real images labelled by the (frozen) clustering branch.

    `labels` are cluster pseudo labels ŷ (argmax of C(F(x))), never ground truth.
    Adam with the paper's learning rate (4.1: 2e-4); the last incomplete batch is kept.
    Under `base.nproc` > 1 each rank takes its shard of every global batch with noise and
    timesteps of its own, and its mean is weighted so that the gradient is the global
    batch mean's (`distributed.share`); a tail batch smaller than the number of ranks is
    skipped there.
    """
    scheduler = make_scheduler(cfg)
    unet = unet.to(device)
    optimizer = adam(unet.parameters(), lr, device)
    state = ResumeState(history={"loss": []})
    stateful = {"unet": unet, "optimizer": optimizer}
    if checkpointer is not None:
        state = checkpointer.restore(stateful, generator)
        state.history.setdefault("loss", [])
    data = images_to_tensor(images, device)
    targets = torch.from_numpy(labels).to(device)
    n = len(data)
    require_rows_per_rank(cfg.batch_size, "diffusion.batch_size", minimum=1)
    denoiser = data_parallel(unet, lambda m, *args, **kwargs: m(*args, **kwargs), device)
    unet.train()
    bar = progress(range(state.epoch, epochs), desc=f"{stage} ddpm", initial=state.epoch, total=epochs)
    for epoch in bar:
        order = torch.randperm(n, generator=generator).to(device)
        draws = rank_generator(generator)  # alone: `generator` itself
        losses = EpochLosses(stage, epoch, "lower the diffusion learning rate")
        for step, start in enumerate(range(0, n, cfg.batch_size)):
            batch = order[start : start + cfg.batch_size]
            if len(batch) < world().size:
                continue  # under DDP only: a tail batch that leaves some rank no image
            idx = shard(batch)
            with autocast(device, precision):
                loss = diffusion_loss(denoiser, scheduler, to_model_input(data[idx]), targets[idx], draws)
            optimizer.zero_grad(set_to_none=True)
            backward_mean(loss, len(idx), len(batch))  # DDP's mean over ranks = the global batch mean
            optimizer.step()
            losses.add(loss, step, weight=len(idx))
        mean_loss = losses.mean()
        state.history["loss"].append(mean_loss)
        state.epoch = epoch + 1
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{mean_loss:.4f}")
        if checkpointer is not None and state.epoch < epochs:
            checkpointer.save(stateful, generator, state)
    return DiffusionResult(unet=unet.cpu(), epoch_loss=state.history["loss"])


def reverse_step(
    scheduler, eps: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """One step x_t -> x_{t-1} of the reverse process (Eq. 4-5), by the scheduler given.

    DDPM (`DDPMScheduler`, Ho et al. Eq. 11): x_{t-1} = μ + σ_t z, z ~ N(0, I) (none at t = 0),
    μ = (x_t - β_t / sqrt(1 - ᾱ_t) · ε_G) / sqrt(α_t) with α_t = 1 - β_t (the paper's printed
    1/α_t is a typo for 1/sqrt(α_t)), and σ_t² = β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t) (Eq. 5's
    σ(t)). diffusers computes μ through x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε_G) / sqrt(ᾱ_t) and the
    posterior mean of q(x_{t-1} | x_t, x̂_0); the two forms are equal algebraically.
    `diffusion.clip_sample` (default true, as in Ho et al.'s released code): x̂_0 is clipped
    to [-1, 1] before the posterior mean. It changes the step only when x̂_0 leaves [-1, 1]
    (then μ is no longer the ε-form above); false gives Eq. 5 exactly.
    DDIM (`DDIMScheduler`, η = 0, Song et al. Eq. 12): deterministic, the same x̂_0 (and clip).
    """
    from diffusers import DDIMScheduler

    if isinstance(scheduler, DDIMScheduler):
        return scheduler.step(eps, t, x_t, eta=0.0).prev_sample
    return scheduler.step(eps, t, x_t, generator=generator).prev_sample


@torch.no_grad()
def sample_images(
    unet: nn.Module,
    cfg: DiffusionConfig,
    labels: np.ndarray,
    device: torch.device,
    generator: torch.Generator,
    batch_size: int | None = None,
    desc: str = "sampling",
    precision: str = "auto",
) -> np.ndarray:
    """Draw x_0 ~ p_G(x_0 | ŷ) for each label: the reverse process of Eq. 4-5.

    `cfg.sampler = "ddpm"` runs all T ancestral steps of Eq. 4-5 (`reverse_step`).
    `cfg.sampler = "ddim"` runs DDIM (Song et al.) with `cfg.sample_steps` steps and η = 0:
    the same trained ε_G, far fewer network calls. Returns uint8 (N, H, W, C).
    `batch_size`: images per network call; None = 500 on the CPU, 4,096 (at up to 32 px,
    fewer for larger images) on a GPU, where small batches leave it idle. Noise is drawn as
    `runtime.step_generator` says.
    """
    from diffusers import DDIMScheduler

    train_scheduler = make_scheduler(cfg)
    if cfg.sampler == "ddim":
        scheduler = DDIMScheduler.from_config(train_scheduler.config)
        scheduler.set_timesteps(cfg.sample_steps)
    else:
        scheduler = train_scheduler
        scheduler.set_timesteps(cfg.timesteps)
    unet = unet.to(device).eval()
    size = unet.config.sample_size
    channels = unet.config.in_channels
    if batch_size is None:  # on a GPU: 4,096 images of up to 32 px per call, fewer for larger ones
        batch_size = 500 if device.type == "cpu" else max(64, int(4096 * min(1.0, (32 / size) ** 2)))
    draws = step_generator(generator, device)
    steps = [(t, t.to(device)) for t in scheduler.timesteps]
    out = []
    chunks = range(0, len(labels), batch_size)
    for start in progress(chunks, desc=desc, total=math.ceil(len(labels) / batch_size)):
        y = torch.from_numpy(labels[start : start + batch_size]).to(device)
        x = torch.randn((len(y), channels, size, size), generator=draws, device=device)
        for t, t_device in steps:
            with autocast(device, precision):
                eps = unet(x, t_device.expand(len(y)), class_labels=y).sample.float()
            x = reverse_step(scheduler, eps, t, x, draws)
        out.append(((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu())
    return torch.cat(out).numpy()


def grid_labels(n_clusters: int, per_cluster: int) -> np.ndarray:
    """Labels for a sample grid: one row per cluster, `per_cluster` images each."""
    return np.repeat(np.arange(n_clusters, dtype=np.int64), per_cluster)
