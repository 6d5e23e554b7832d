"""Stage I, part 1: SimCLR pretraining of the feature extractor F with Eq. 1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gccluster.config import PretrainConfig
from gccluster.data.augment import build_view_augment, resolve_backend
from gccluster.distributed import data_parallel, gather, rank_generator, require_rows_per_rank, shard
from gccluster.losses.contrastive import nt_xent
from gccluster.models.backbones import build_backbone
from gccluster.models.heads import ProjectionHead
from gccluster.runtime import autocast, conv_memory_format, images_to_tensor, progress, to_model_input
from gccluster.train.optim import EpochLosses, build_optimizer, build_scheduler
from gccluster.train.resume import EpochCheckpointer, ResumeState


@dataclass
class PretrainResult:
    backbone: nn.Module
    arch: dict
    projector: nn.Module  # g(.) of Eq. 1, kept so that K-means can run on g(F(x))
    projector_arch: dict
    epoch_loss: list[float]


def backbone_arch(cfg: PretrainConfig, channels: int, image_size: int) -> dict:
    """Keyword arguments that rebuild the backbone (stored in its checkpoint)."""
    return {"name": cfg.backbone, "in_channels": channels, "image_size": image_size, "width": cfg.width,
            "readout": cfg.readout}


def pretrain_simclr(
    train_images: np.ndarray,
    dataset: str,
    cfg: PretrainConfig,
    device: torch.device,
    generator: torch.Generator,
    checkpointer: EpochCheckpointer | None = None,
    precision: str = "auto",
) -> PretrainResult:
    """Train F and the projection head g on two random views per image.

    `train_images`: uint8 (N, H, W, C). Labels are not an argument: pretraining never sees them.
    `precision` is `base.precision` (see runtime.use_bf16).
    Batches are drawn without replacement each epoch; the last incomplete batch is dropped
    so that every NT-Xent sees the same number of negatives. Both views of a batch go
    through F as one batch (one set of BatchNorm statistics, as in SimCLR): with two
    separate batches, each view is normalised by statistics of its own half, a cue the
    contrastive loss can exploit that real features do not carry.
    Under `base.nproc` > 1 each rank embeds its shard of the global batch and NT-Xent runs
    on the views gathered from all ranks (`gccluster.distributed`): the loss and gradients
    of one process with the global batch, up to BatchNorm, which is per rank on the CPU.
    """
    n_images, size, _, channels = train_images.shape
    arch = backbone_arch(cfg, channels, size)
    backbone = build_backbone(**arch)
    projector_arch = {"in_dim": backbone.feature_dim, "out_dim": cfg.projection_dim}
    projector = ProjectionHead(**projector_arch)
    model = nn.ModuleDict({"backbone": backbone, "projector": projector}).to(device)
    model = model.to(memory_format=conv_memory_format(device, precision))
    augment = build_view_augment(
        cfg.augment.policy, dataset, size, channels, cfg.augment.crop_min_scale, cfg.augment.jitter,
        cfg.augment.erasing, backend=resolve_backend(cfg.augment.backend, device.type),
    ).to(device)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer, device)
    scheduler = build_scheduler(optimizer, cfg.schedule, cfg.epochs)

    state = ResumeState(history={"loss": []})
    stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    if checkpointer is not None:
        state = checkpointer.restore(stateful, generator)
        state.history.setdefault("loss", [])

    images = images_to_tensor(train_images, device)
    batch_size = min(cfg.batch_size, n_images)
    require_rows_per_rank(batch_size, "pretrain.batch_size")
    steps = n_images // batch_size
    embed = data_parallel(model, lambda m, x: m["projector"](m["backbone"](x)), device)
    hint = "lower pretrain.optimizer.lr or raise pretrain.temperature"
    bar = progress(range(state.epoch, cfg.epochs), desc="pretrain", initial=state.epoch, total=cfg.epochs)
    model.train()
    for epoch in bar:
        order = torch.randperm(n_images, generator=generator).to(device)
        rank_generator(generator)  # per-rank augmentation streams under DDP; alone, nothing
        losses = EpochLosses("pretrain", epoch, hint)
        for step in range(steps):
            rows = shard(order[step * batch_size : (step + 1) * batch_size])
            batch = images[rows].float() / 255.0
            with torch.no_grad():
                view_a, view_b = augment(batch), augment(batch)
            with autocast(device, precision):
                z = embed(to_model_input(torch.cat([view_a, view_b])))
            # NT-Xent over the global batch: every rank's views are the negatives of every other's.
            loss = nt_xent(gather(z[: len(rows)]), gather(z[len(rows) :]), cfg.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.add(loss, step)
        scheduler.step()
        mean_loss = losses.mean()
        state.history["loss"].append(mean_loss)
        state.epoch = epoch + 1
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{mean_loss:.4f}")
        if checkpointer is not None and state.epoch < cfg.epochs:
            checkpointer.save(stateful, generator, state)
    model.cpu()
    return PretrainResult(backbone=model["backbone"], arch=arch, projector=model["projector"],
                          projector_arch=projector_arch, epoch_loss=state.history["loss"])
