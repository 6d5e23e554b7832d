"""GATCluster training: Algorithm 1's two steps, as the official code runs them.

Each iteration takes the next big batch of M train images (a shuffled pass, the last batch
of a pass smaller, as the code's loader with drop_last=False; a remainder too small for one
sub-batch or for k-means' K clusters waits for the next pass instead). Step 1, in eval mode
without gradients: the label features l of the un-augmented images, in chunks of m1, and
from them the fixed targets: Eq. 5 (L_T's), Eq. 11 (L_A's) and Eq. 6's relations from
k-means on the Eq. 11 targets. Step 2, in train mode: one augmented view per image, drawn
once, then `repeats` shuffled passes over the big batch in sub-batches of m2, one Adam step
on Eq. 3 each. A fixed budget in iterations; the last iteration's network is the result (the
code keeps the label-selected best checkpoint: we do not). Read-out: argmax l on the
un-augmented test images.
"""

from __future__ import annotations

from pathlib import Path

import kornia.augmentation as K
import torch
from torch import nn

from gccluster.baselines.common import (
    PeriodicSaver,
    ShuffledBatches,
    TrainedBaseline,
    TrainRequest,
    load_baseline,
    restore_training,
)
from gccluster.baselines.gatcluster.losses import (
    attention_loss,
    attention_target,
    balanced_target,
    entropy_loss,
    gatcluster_objective,
    kmeans_assignments,
    relation_target,
    separability_loss,
    transformation_invariance_loss,
)
from gccluster.baselines.gatcluster.model import GATClusterClusterer, to_grey
from gccluster.baselines.gatcluster.params import GATClusterConfig
from gccluster.distributed import data_parallel, from_main, gather, local_rows, require_rows_per_rank, shard, world
from gccluster.errors import UserError
from gccluster.metrics import cluster_balance
from gccluster.runtime import autocast, conv_memory_format, images_to_tensor, progress
from gccluster.train.optim import EpochLosses

PARTS = ("loss", "t", "e", "e_att", "r", "a")
CURVES = (*PARTS, "balance", "fallback", "steps")
HINT = "lower baselines.gatcluster.lr"
CHECKPOINT_KIND = "baseline_gatcluster"
SAVE_EVERY_S = 30.0  # resume state is written at an iteration end at most this often


def augmented_views(cfg: GATClusterConfig, dataset: str, channels: int) -> nn.Module:
    """T(x) of Eq. 4 as the code's transforms, in their order: horizontal flip (not for
    digits), colour jitter (brightness and contrast `jitter`; hue 0.2 on colour images), random
    affine (±10°, shifts up to 0.1 of the side, scale 0.8-1.2, shear ±10°, black outside),
    each applied to every image in [0, 1]; colour images are made grey afterwards (`to_grey`)."""
    ops: list[nn.Module] = []
    if cfg.resolved_flip(dataset):
        ops.append(K.RandomHorizontalFlip())
    hue = 0.2 if channels == 3 else 0.0
    if cfg.jitter > 0 or hue > 0:
        ops.append(K.ColorJitter(brightness=cfg.jitter, contrast=cfg.jitter, hue=hue, p=1.0))
    ops.append(K.RandomAffine(degrees=10.0, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10.0, p=1.0))
    return nn.Sequential(*ops)


def model_arch(request: TrainRequest) -> dict:
    cfg: GATClusterConfig = request.config
    return {"image_size": request.images.shape[1], "n_clusters": request.n_clusters, "width": cfg.width,
            "attention_module": cfg.am, "alpha": cfg.alpha, "attention": cfg.attention, "input_range": cfg.input_range}


def train(request: TrainRequest) -> TrainedBaseline:
    cfg: GATClusterConfig = request.config
    device, precision, generator = request.device, request.precision, request.generator
    n_images, _, _, channels = request.images.shape
    n_clusters = request.n_clusters
    minimum = max(cfg.sub_batch, n_clusters)  # one sub-batch, and k-means' K clusters
    big_batch = cfg.resolved_big_batch(request.dataset, n_images)
    if big_batch < minimum:
        raise UserError(f"baselines.gatcluster: a big batch of {big_batch} images is below the sub-batch "
                        f"({cfg.sub_batch}) or K ({n_clusters}); allowed: big_batch >= {minimum} and as many "
                        "train images")
    require_rows_per_rank(cfg.sub_batch, "baselines.gatcluster.sub_batch")
    arch = model_arch(request)
    clusterer = GATClusterClusterer(**arch).to(device)
    clusterer.to(memory_format=conv_memory_format(device, precision))
    network = clusterer.network
    forward = data_parallel(network, lambda m, x: m(x, with_attention=cfg.am)[:2], device)
    optimizer = torch.optim.Adam(network.parameters(), lr=cfg.lr, fused=True)
    augment = augmented_views(cfg, request.dataset, channels).to(device)
    weights = cfg.weights()

    batches = ShuffledBatches()
    stateful = {"model": clusterer, "optimizer": optimizer, "batches": batches}
    state = restore_training(request, stateful, CURVES)
    history = state.history

    images = images_to_tensor(request.images, device)
    saver = PeriodicSaver(request, stateful, state, SAVE_EVERY_S)
    for iteration in progress(range(state.epoch, cfg.iterations), initial=state.epoch, total=cfg.iterations,
                              desc="gatcluster iterations"):
        batch = images[batches.next(n_images, big_batch, minimum, generator).to(device)].float() / 255.0
        targets = _targets(network, batch, cfg, n_clusters, device, precision, generator)
        with torch.no_grad():
            same_views_on_every_rank(generator)
            views = to_grey(augment(batch))
        network.train()
        parts = {name: EpochLosses("baseline@gatcluster", iteration, HINT, check=name == "loss") for name in PARTS}
        per_pass = len(batch) // cfg.sub_batch
        for _ in range(cfg.repeats):
            order = torch.randperm(len(batch), generator=generator).to(device)
            for step in range(per_pass):
                rows = order[step * cfg.sub_batch : (step + 1) * cfg.sub_batch]
                for name, value in _step(forward, optimizer, views, targets, rows, cfg, weights, device,
                                         precision).items():
                    parts[name].add(value, step)
        for name, values in parts.items():
            if values.values:
                history[name].append(values.mean())
        history["balance"].append(targets["balance"])
        history["fallback"].append(int(targets["fallback"]))
        history["steps"].append(cfg.repeats * per_pass)
        state.epoch = iteration + 1
        saver.maybe_save(finished=state.epoch >= cfg.iterations)
    clusterer.cpu().eval()
    curves = {name: values for name, values in history.items() if values}
    summary = {"iterations": cfg.iterations, "steps": int(sum(history["steps"])), "big_batch": big_batch,
               "fallback_iterations": int(sum(history["fallback"]))}
    return TrainedBaseline(model=clusterer, arch=arch, curves=curves, summary=summary)


@torch.no_grad()
def _targets(network, batch: torch.Tensor, cfg: GATClusterConfig, n_clusters: int, device, precision,
             generator: torch.Generator) -> dict:
    """Step 1 of Algorithm 1 on one big batch (eval mode, no gradients): Eq. 5 and Eq. 11
    targets, Eq. 6 relations (with the code's fallback), and the balance of argmax l (a
    label-free collapse watch)."""
    network.eval()
    chunks = []
    mine = local_rows(batch)
    for start in range(0, len(mine), cfg.target_chunk):
        with autocast(device, precision):
            label_features, _, _ = network(to_grey(mine[start : start + cfg.target_chunk]),
                                           with_attention=False)
        chunks.append(label_features.float())
    # Under DDP every rank has the whole big batch's l; the targets come from the first rank's
    # (k-means on every rank would agree only up to float rounding).
    label_features = from_main(gather(torch.cat(chunks)))
    sharpened = attention_target(label_features)
    targets = {"t": balanced_target(label_features), "a": sharpened, "fallback": False,
               "balance": round(cluster_balance(torch.bincount(label_features.argmax(dim=1),
                                                               minlength=n_clusters).cpu().numpy()), 4)}
    if cfg.sm:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        assignments = kmeans_assignments(sharpened, n_clusters, cfg.kmeans_n_init, seed)
        relations, targets["fallback"] = relation_target(assignments, n_clusters, cfg.min_ratio)
        targets["r"] = from_main(relations.to(batch.device))
        targets["fallback"] = bool(from_main(torch.tensor(int(targets["fallback"]), device=batch.device)))
    return targets


def same_views_on_every_rank(generator: torch.Generator) -> None:
    """Under DDP: seed the augmentations (kornia draws from the global RNG) alike on every
    rank, so that each image has one view per iteration as alone, whichever rank trains on
    it in a pass. Alone: nothing (the stage's RNG as before)."""
    if world().active:
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))


def _step(forward, optimizer, views: torch.Tensor, targets: dict, rows: torch.Tensor, cfg: GATClusterConfig,
          weights, device, precision) -> dict[str, torch.Tensor]:
    """One Adam step of Eq. 3 on the sub-batch `rows` of the augmented views with their fixed
    targets. Under DDP each rank runs its shard of `rows` and Eq. 3 (L_E's batch mean and
    L_R's pairs included) runs on the outputs gathered from all ranks."""
    with autocast(device, precision):
        label_features, attention = forward(views[shard(rows)])
    label_features = gather(label_features.float())
    attention = gather(attention) if attention is not None else None
    parts = {"e": entropy_loss(label_features)}
    if cfg.ti:
        parts["t"] = transformation_invariance_loss(label_features, targets["t"][rows])
    if cfg.sm:
        parts["r"] = separability_loss(label_features, targets["r"][rows][:, rows])
    if attention is not None:
        attention = attention.float()
        parts["e_att"] = entropy_loss(attention)
        parts["a"] = attention_loss(attention, targets["a"][rows])
    loss = gatcluster_objective(parts, weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": loss.detach(), **{name: value.detach() for name, value in parts.items()}}


def load(path: str | Path) -> GATClusterClusterer:
    """The trained model written by the `baseline@gatcluster` stage."""
    return load_baseline(path, CHECKPOINT_KIND, GATClusterClusterer, "GATCluster")
