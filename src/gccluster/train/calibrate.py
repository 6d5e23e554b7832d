"""Stage II: one GCC round's clustering step (3.3, Eq. 8-12) and its generated bank.

In the paper every real batch's predicted labels ŷ condition a freshly generated batch.
Sampling a DDPM inside every step is too slow to be practical, so a round draws a labelled
bank from the frozen G, with labels in proportion to the clusters the head predicts on the
train split, and pairs each real batch with bank images of the very clusters the head
predicts for it (DESIGN.md §4). How close this comes to fresh batches is two params:
`gcc.bank_size` (null = as many images as the train split) and `gcc.bank_refresh` (one
bank per round, or a fresh bank at the start of every epoch). With both at the paper's
setting an epoch sees as many generated images as real ones, drawn from a bank as large as
the train split and discarded after the epoch: no image repeats within a batch, but each
batch draws from its clusters' pools afresh, so across an epoch an image is used about
Poisson(1) times (some never, some twice), not exactly once as with the paper's fresh
batches. A small bank reused for every epoch lets L_cwm and L_ml be met by fitting those
few images (issue 11).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from gccluster.config import DiffusionConfig, GCCConfig
from gccluster.diffusion import sample_images
from gccluster.distributed import data_parallel, gather, rank_generator, require_rows_per_rank, shard, world
from gccluster.errors import ClusterCollapseError
from gccluster.losses.calibration import (
    CalibrationWeights,
    cluster_wise_matching,
    gcc_objective,
    head_scores,
    median_bandwidth,
    mmd_per_cluster,
    reliable_metric_loss,
)
from gccluster.metrics import cluster_balance
from gccluster.runtime import autocast, conv_memory_format, images_to_tensor, progress, to_model_input
from gccluster.train.optim import EpochLosses, adam
from gccluster.train.resume import EpochCheckpointer, ResumeState

LOSS_PARTS = ("total", "d", "cwm", "ml")
# Per-epoch columns of cluster_loss.csv: the loss parts, then the label-free collapse monitor.
CURVE_COLUMNS = (*LOSS_PARTS, "balance")


def bank_label_counts(predicted: np.ndarray, n_clusters: int, bank_size: int) -> np.ndarray:
    """How many images of each cluster to generate: `bank_size` split in proportion to the
    clusters predicted on the train split (largest-remainder rounding, so counts sum exactly).
    """
    freq = np.bincount(predicted, minlength=n_clusters)[:n_clusters] / max(len(predicted), 1)
    raw = freq * bank_size
    counts = np.floor(raw).astype(np.int64)
    short = bank_size - int(counts.sum())
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def check_balance(balance: float, min_balance: float, stage: str, epoch: int) -> None:
    """Stop a round whose predicted clusters collapsed (a degenerate optimum of Eq. 12:
    L_d and L_ml are both small when every real image and the paired bank images share one
    cluster), rather than write a model that puts everything in one cluster."""
    if balance < min_balance:
        raise ClusterCollapseError(
            f"predicted clusters collapsed in {stage} epoch {epoch + 1} (cluster balance "
            f"{balance:.3f} < gcc.min_balance {min_balance}); lower gcc.lr (1e-5 held on "
            f"Fashion-MNIST, where 1e-4 collapsed), or set gcc.min_balance=0 to keep the collapsed model"
        )


@dataclass
class Bank:
    images: np.ndarray  # uint8 (M, H, W, C)
    labels: np.ndarray  # int64 (M,), the conditioning clusters


def draw_bank(
    unet: nn.Module,
    predicted: np.ndarray,
    n_clusters: int,
    size: int,
    cfg: DiffusionConfig,
    device: torch.device,
    generator: torch.Generator,
    desc: str,
    precision: str = "auto",
) -> Bank:
    """`size` images from G (Eq. 4-5), conditioned on clusters in proportion to `predicted`
    (the head's clusters on the train split; `bank_label_counts`)."""
    labels = np.repeat(np.arange(n_clusters), bank_label_counts(predicted, n_clusters, size))
    if not world().active:
        return Bank(sample_images(unet, cfg, labels, device, generator, desc=desc, precision=precision), labels)
    # Under DDP each rank draws its part of the labels with a stream of its own, and every
    # rank receives the whole bank (in label order, as alone).
    mine = shard(torch.arange(len(labels))).numpy()
    part = sample_images(unet, cfg, labels[mine], device, rank_generator(generator), desc=desc, precision=precision)
    return Bank(gather(torch.from_numpy(part).to(device)).cpu().numpy(), labels)


def draw_without_replacement(pool_size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` indices into a pool of `pool_size`, each used once before any is used again:
    one random permutation of the pool, then another for the rest, and so on. No duplicate
    when count <= pool_size; else every member at most ceil(count / pool_size) times."""
    rounds = -(-count // pool_size)
    return torch.cat([torch.randperm(pool_size, generator=generator) for _ in range(rounds)])[:count]


class BankPairing:
    """Draws the bank images that join a real batch (`gcc.pairing`), without replacement where
    the pool allows, so that no generated image appears twice in one batch (a repeated image
    would count as a perfectly matched equal-label pair in L_cwm and as a repeated point in L_d)."""

    def __init__(self, bank_labels: torch.Tensor, n_clusters: int):
        self.size = len(bank_labels)
        self.members = [torch.nonzero(bank_labels == k).flatten() for k in range(n_clusters)]

    def draw_uniform(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """`count` bank indices drawn uniformly (labels in the bank's mix)."""
        return draw_without_replacement(self.size, count, generator)

    def draw(self, clusters: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Bank indices, one per entry of `clusters` that has bank images (others are dropped)."""
        picks = []
        for k in torch.unique(clusters).tolist():
            pool = self.members[k]
            if len(pool) == 0:
                continue
            count = int((clusters == k).sum())
            picks.append(pool[draw_without_replacement(len(pool), count, generator)])
        return torch.cat(picks) if picks else torch.empty(0, dtype=torch.long)


@torch.no_grad()
def predict_batch(backbone: nn.Module, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ŷ = argmax C(F(x)) with BatchNorm in eval mode (no running-stat update)."""
    was_training = backbone.training
    backbone.eval()
    head.eval()
    clusters = head(backbone(x)).argmax(dim=1)
    backbone.train(was_training)
    head.train(was_training)
    return clusters


def calibration_forward(model: nn.ModuleDict, x: torch.Tensor, n_real: int
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """F on real and generated images as one batch (one BatchNorm batch, so the shift
    between the two sets stays visible to L_d), then C on the generated ones: (F(x) real,
    F(x̃), C(F(x̃))), features in fp32."""
    features = model["backbone"](x)
    f_real, f_fake = features[:n_real].float(), features[n_real:].float()
    return f_real, f_fake, model["head"](f_fake)


@dataclass
class CalibrationResult:
    history: dict[str, list[float]]  # per-epoch CURVE_COLUMNS
    last_bank: Bank  # the bank of the last epoch (all epochs' with bank_refresh: round)


def calibrate_clustering(
    backbone: nn.Module,
    head: nn.Module,
    real_images: np.ndarray,
    bank: Bank | Callable[[torch.Generator], Bank],
    cfg: GCCConfig,
    device: torch.device,
    generator: torch.Generator,
    stage: str,
    checkpointer: EpochCheckpointer | None = None,
    precision: str = "auto",
) -> CalibrationResult:
    """Fine-tune F and C for `cfg.cluster_epochs` epochs with Eq. 12 on real + bank images.

    `bank`: one Bank for every epoch (`gcc.bank_refresh: round`), or a function that draws
    a fresh one from the frozen G with the given generator, called at the start of every
    epoch (`epoch`). The epoch's bank is drawn from the training generator after any
    resume, so an interrupted round redraws exactly the banks an uninterrupted one would.

    Per step: ŷ = C(F(x)) on a real batch; a generated batch is drawn from the bank, with
    the same clusters as ŷ (`gcc.pairing: predicted`) or uniformly (`bank`); real and
    generated images go through F together (one BatchNorm batch, so the shift between the
    two sets stays visible to L_d); then
    w_d L_d(F(x), ŷ; F(x̃), ỹ) + w_cwm L_cwm(F(x̃), ỹ) + w_ml L_ml(p̃(C(F(x̃))), ỹ), p̃ = softmax
    or the logits (`gcc.ml_scores`).
    History: the per-epoch mean of each part ("total", "d", "cwm", "ml") and "balance", the
    `cluster_balance` of the clusters predicted for the real images during that epoch.
    Under `base.nproc` > 1 each rank takes its shard of the real batch and of the paired
    generated batch (drawn once for the global batch), and Eq. 8-11 (the MMD per cluster
    and the median bandwidth included) run on the features gathered from all ranks.
    """
    weights = CalibrationWeights(cfg.weights.d, cfg.weights.cwm, cfg.weights.ml)
    model = nn.ModuleDict({"backbone": backbone, "head": head}).to(device)
    model = model.to(memory_format=conv_memory_format(device, precision))
    require_rows_per_rank(cfg.batch_size, "gcc.batch_size")
    forward = data_parallel(model, calibration_forward, device)
    optimizer = adam(model.parameters(), cfg.lr, device)
    state = ResumeState(history={column: [] for column in CURVE_COLUMNS})
    stateful = {"model": model, "optimizer": optimizer}
    if checkpointer is not None:
        state = checkpointer.restore(stateful, generator)
        for column in CURVE_COLUMNS:
            state.history.setdefault(column, [])

    real = images_to_tensor(real_images, device)
    n = len(real)
    model.train()
    bar = progress(range(state.epoch, cfg.cluster_epochs), desc=f"{stage} F,C", initial=state.epoch,
                   total=cfg.cluster_epochs)
    current = bank if isinstance(bank, Bank) else None
    for epoch in bar:
        if not isinstance(bank, Bank):
            current = bank(generator)
        fake = images_to_tensor(current.images, device)
        fake_labels = torch.from_numpy(current.labels).to(device)
        pairing = BankPairing(torch.from_numpy(current.labels), head.n_clusters)
        order = torch.randperm(n, generator=generator).to(device)
        # The objective is checked for finiteness; its parts are only averaged (as before).
        losses = {part: EpochLosses(stage, epoch, "lower gcc.lr", check=part == "total") for part in LOSS_PARTS}
        predicted_counts = torch.zeros(head.n_clusters, dtype=torch.long, device=device)
        for step, start in enumerate(range(0, n, cfg.batch_size)):
            rows = order[start : start + cfg.batch_size]
            if len(rows) < 2 * world().size:
                continue  # BatchNorm needs two samples per rank; only a short tail batch is skipped
            x_real = to_model_input(real[shard(rows)])
            # ŷ of the global batch on every rank, so that every rank draws the same bank
            # images (from the shared generator) and takes its part of them.
            predicted = gather(predict_batch(backbone, head, x_real))
            predicted_counts += torch.bincount(predicted, minlength=head.n_clusters)
            if cfg.pairing == "predicted":
                picks = pairing.draw(predicted.cpu(), generator).to(device)
            else:
                picks = pairing.draw_uniform(len(rows), generator).to(device)
            if len(picks) == 0:
                # No bank image of any cluster predicted in this batch (a small bank): nothing
                # to calibrate with, and Eq. 10-11 over no images would be NaN.
                continue
            x_fake = to_model_input(fake[shard(picks)])
            fake_clusters = fake_labels[picks]
            with autocast(device, precision):
                f_real, f_fake, logits_fake = forward(torch.cat([x_real, x_fake]), len(x_real))
                scores_fake = head_scores(logits_fake, cfg.ml_scores)
            # Eq. 8-11 over the global batch (each rank's rows gathered with autograd).
            f_real, f_fake, scores_fake = gather(f_real), gather(f_fake), gather(scores_fake)
            bandwidth = median_bandwidth(torch.cat([f_real, f_fake])) if cfg.bandwidth == "median" else cfg.bandwidth
            parts = {
                "d": mmd_per_cluster(f_real, predicted, f_fake, fake_clusters, bandwidth, cfg.mmd_estimator),
                "cwm": cluster_wise_matching(f_fake, fake_clusters),
                "ml": reliable_metric_loss(scores_fake, fake_clusters, cfg.ml_reduction),
            }
            total = gcc_objective(parts, weights)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            for key, value in {"total": total, **parts}.items():
                losses[key].add(value, step)
        for part in LOSS_PARTS:
            state.history[part].append(losses[part].mean())
        balance = cluster_balance(predicted_counts.cpu())
        check_balance(balance, cfg.min_balance, stage, epoch)
        state.history["balance"].append(balance)
        state.epoch = epoch + 1
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{state.history['total'][-1]:.4f}")
        if checkpointer is not None and state.epoch < cfg.cluster_epochs:
            checkpointer.save(stateful, generator, state)
    model.cpu().eval()
    if current is None:  # resumed after the last epoch: nothing left to train on
        current = bank(generator)
    return CalibrationResult(state.history, current)
