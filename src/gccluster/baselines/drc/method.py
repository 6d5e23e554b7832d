"""DRC training as PICA's code runs it (DRC says its network and settings are PICA's).

Each epoch makes one pass over the train images per head, the over-clustering head first
(PICA's head order [70, K]), each pass with its own shuffle, in batches of `batch_size`
originals (the incomplete last batch dropped). A step takes the original view of the N
images and `repeats` independent augmented views of each (2N rows ordered [1..N, 1..N]),
runs them through the network in two forward passes (two BatchNorm batches, as PICA),
repeats the originals' outputs to match, and minimises Eq. 10 for the head of that pass.
One Adam (lr fixed, PICA's betas) over the whole network. A fixed budget in epochs; the last
epoch's network is the result. Read-out: argmax of the main head on the test view.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gccluster.baselines.common import PeriodicSaver, TrainedBaseline, TrainRequest, load_baseline, restore_training
from gccluster.baselines.drc.losses import (
    assignment_feature_loss,
    assignment_probability_loss,
    cluster_regularisation_loss,
    drc_objective,
)
from gccluster.baselines.drc.model import DRCClusterer, original_view, padded_crop_view
from gccluster.baselines.drc.params import DRCConfig
from gccluster.data.augment import AUTO_POLICY, FusedViews, kornia_views, resolve_backend, view_spec
from gccluster.distributed import data_parallel, gather, rank_generator, require_rows_per_rank, shard, world
from gccluster.errors import UserError
from gccluster.metrics import cluster_balance
from gccluster.runtime import autocast, conv_memory_format, images_to_tensor, progress, step_generator, to_model_input
from gccluster.train.optim import EpochLosses

PARTS = ("loss", "af", "ap", "cr")
CURVES = (*PARTS, "logit_norm", "balance", *(f"{name}_over" for name in PARTS))
HINT = "lower baselines.drc.lr"
CHECKPOINT_KIND = "baseline_drc"
SAVE_EVERY_S = 30.0  # resume state is written at an epoch end at most this often


def augmented_view_spec(cfg: DRCConfig, dataset: str, channels: int):
    """PICA's augmented view, through the pipeline's policies: random resized crop (area
    crop_min_scale-1), brightness/contrast jitter, flips except for digits (the `digits` policy
    adds small rotations and shifts instead, as the specification suggests); on colour images
    SimCLR's colour jitter (hue 0.1, PICA 0.4) and random grayscale 0.2, as PICA's."""
    policy = "simclr" if channels == 3 else AUTO_POLICY.get(dataset, "grayscale")
    jitter = 0.0 if policy == "simclr" else cfg.jitter  # simclr's colour jitter holds it
    return view_spec(policy, cfg.resolved_crop_min_scale(dataset, channels), jitter, erasing=0.0)


def model_arch(request: TrainRequest) -> dict:
    cfg: DRCConfig = request.config
    _, size, _, channels = request.images.shape
    return {"in_channels": channels, "image_size": size, "n_clusters": request.n_clusters,
            "overcluster_k": cfg.overcluster_k, "backbone": cfg.backbone, "width": cfg.width,
            "sobel": cfg.resolved_sobel(channels), "original_zoom": cfg.test_zoom(channels)}


def train(request: TrainRequest) -> TrainedBaseline:
    cfg: DRCConfig = request.config
    device, precision, generator = request.device, request.precision, request.generator
    n_images, size, _, channels = request.images.shape
    if n_images < cfg.batch_size:
        raise UserError(f"baselines.drc.batch_size = {cfg.batch_size} exceeds the {n_images} train images")
    require_rows_per_rank(cfg.batch_size, "baselines.drc.batch_size")
    arch = model_arch(request)
    clusterer = DRCClusterer(**arch).to(device)
    clusterer.to(memory_format=conv_memory_format(device, precision))
    network = clusterer.network
    optimizer = torch.optim.Adam(network.parameters(), lr=cfg.lr, fused=True)
    spec = augmented_view_spec(cfg, request.dataset, channels)
    augment = (FusedViews(spec) if resolve_backend("auto", device.type) == "fused"
               else kornia_views(spec, size)).to(device)

    stateful = {"model": clusterer, "optimizer": optimizer}
    state = restore_training(request, stateful, CURVES)
    history = state.history

    images = images_to_tensor(request.images, device)
    steps_per_pass = n_images // cfg.batch_size
    # PICA trains its heads in the order listed, [70, K]: the over-clustering head first.
    heads = [1, 0] if len(network.heads) == 2 else [0]
    # One forward for both views, so that DDP sees one forward per backward; the head not
    # trained in a pass has no gradient then.
    forward = data_parallel(network, head_logits, device, unused_parameters=len(heads) > 1)
    saver = PeriodicSaver(request, stateful, state, SAVE_EVERY_S)
    network.train()
    for epoch in progress(range(state.epoch, cfg.epochs), initial=state.epoch, total=cfg.epochs, desc="drc epochs"):
        draw = step_generator(rank_generator(generator), device)  # alone: as before
        parts = {(head, name): EpochLosses("baseline@drc", epoch, HINT, check=name == "loss")
                 for head in heads for name in PARTS}
        norms = EpochLosses("baseline@drc", epoch, HINT, check=False)
        counts = torch.zeros(request.n_clusters, device=device)
        for head in heads:
            order = torch.randperm(n_images, generator=generator).to(device)
            for step in range(steps_per_pass):
                rows = shard(order[step * cfg.batch_size : (step + 1) * cfg.batch_size])
                batch = images[rows].float() / 255.0
                losses, logits = _step(forward, head, optimizer, augment, batch, cfg, device, precision, draw)
                for name, value in losses.items():
                    parts[(head, name)].add(value, step)
                if head == 0:
                    norms.add(logits.norm(dim=1).mean(), step)
                    counts += torch.bincount(logits.argmax(dim=1), minlength=request.n_clusters)
        for (head, name), values in parts.items():
            history[name if head == 0 else f"{name}_over"].append(values.mean())
        history["logit_norm"].append(norms.mean())
        history["balance"].append(round(cluster_balance(counts.cpu().numpy()), 4))
        state.epoch = epoch + 1
        saver.maybe_save(finished=state.epoch >= cfg.epochs)
    clusterer.cpu()
    curves = {name: values for name, values in history.items() if values}
    summary = {"epochs": cfg.epochs, "steps": cfg.epochs * steps_per_pass * len(heads), "heads": len(heads)}
    return TrainedBaseline(model=clusterer, arch=arch, curves=curves, summary=summary)


def head_logits(network, originals: torch.Tensor, views: torch.Tensor, head: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One head's logits for the originals and for their augmented views, in two forward
    passes (two BatchNorm batches, as PICA)."""
    logits = network.heads[head](network.features(to_model_input(originals)))
    return logits, network.heads[head](network.features(to_model_input(views)))


def draw_original_views(batch: torch.Tensor, cfg: DRCConfig, draw: torch.Generator) -> torch.Tensor:
    """The original view of each image in [0, 1] (`baselines.drc.original_view`)."""
    if cfg.resolved_original_view(batch.shape[1]) == "pad_crop":
        return padded_crop_view(batch, cfg.original_pad, draw)
    return original_view(batch, cfg.original_zoom, draw)


def gather_repeated(augmented: torch.Tensor, repeats: int) -> torch.Tensor:
    """Every rank's augmented rows [1..n, 1..n] (`repeats` blocks of its n originals) as the
    global batch's [1..N, 1..N], the order one process gives (alone: unchanged)."""
    if not world().active:
        return augmented
    blocks = augmented.reshape(repeats, -1, augmented.shape[1]).transpose(0, 1)  # (n, repeats, K)
    return gather(blocks).transpose(0, 1).reshape(-1, augmented.shape[1])


def _step(forward, head: int, optimizer, augment, batch, cfg: DRCConfig, device, precision,
          draw) -> tuple[dict, torch.Tensor]:
    """One update of the trunk and one head on N originals and their repeated augmented views
    (Eq. 10 on that head's logits). Returns the loss parts and the originals' logits.
    Under DDP `batch` is this rank's shard, and Eq. 10 runs on the global batch's logits
    gathered from all ranks (L_AF and L_AP contrast every image with every other)."""
    with torch.no_grad():
        originals = draw_original_views(batch, cfg, draw)
        views = augment(batch.repeat(cfg.repeats, 1, 1, 1))  # [1..N, 1..N]: PICA's repeat sampler
    with autocast(device, precision):
        logits, augmented = forward(originals, views, head)
    logits, augmented = gather(logits.float()), gather_repeated(augmented.float(), cfg.repeats)
    repeated = logits.repeat(cfg.repeats, 1)
    probabilities, augmented_probabilities = torch.softmax(repeated, dim=1), torch.softmax(augmented, dim=1)
    af = assignment_feature_loss(repeated, augmented, cfg.t_af, cfg.af_similarity())
    ap = assignment_probability_loss(probabilities, augmented_probabilities, cfg.t_ap, cfg.ap_similarity())
    cr = cluster_regularisation_loss(torch.softmax(logits, dim=1) if cfg.cr_rows == "originals" else probabilities)
    loss = drc_objective(af, ap, cr, cfg.cr_weight, cfg.af_weight, cfg.ap_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    parts = {"loss": loss.detach(), "af": af.detach(), "ap": ap.detach(), "cr": cr.detach()}
    return parts, logits.detach()


def load(path: str | Path) -> DRCClusterer:
    """The trained model written by the `baseline@drc` stage."""
    return load_baseline(path, CHECKPOINT_KIND, DRCClusterer, "DRC")
