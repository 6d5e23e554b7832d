"""DCCS training (Algorithm 1 of Zhao et al. 2020, as the official `train.py` runs it) and
its label-free stopping rule.

One global batch counter runs across epochs: of every n_critic + 1 batches, the first
n_critic update the critic C (Eq. 14), each on its own batch, with the encoder run in train
mode under no_grad (its BatchNorm statistics move, as in the code), and the last updates Q
and D together (Eq. 12-13). Batches of `batch_size` train images, reshuffled every epoch,
the incomplete last batch dropped. Adam(lr, betas 0.5, 0.9): one optimizer over Q and D,
one for C. Read-out: argmax of the category logits.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from gccluster.baselines.common import PeriodicSaver, TrainedBaseline, TrainRequest, load_baseline, restore_training
from gccluster.baselines.dccs.losses import (
    DCCSWeights,
    augmentation_invariance_loss,
    critic_loss,
    critic_objective,
    encoder_adversarial_loss,
    encoder_objective,
    mutual_information_loss,
)
from gccluster.baselines.dccs.model import DCCSCritic, DCCSDiscriminator, DCCSEncoder, latent_code, sample_prior
from gccluster.baselines.dccs.params import DCCSConfig
from gccluster.data.augment import FusedViews, ViewSpec, kornia_views, resolve_backend, rgb_to_grayscale
from gccluster.distributed import (
    all_sum,
    average_gradients,
    backward_mean,
    gather,
    rank_generator,
    require_rows_per_rank,
    shard,
    share,
    sync_batchnorm,
    world,
)
from gccluster.errors import NonFiniteLossError, UserError
from gccluster.metrics import cluster_balance
from gccluster.runtime import autocast, conv_memory_format, images_to_tensor, progress, step_generator, to_model_input
from gccluster.train.optim import EpochLosses

CURVES = ("loss", "mi", "aug", "adv_encoder", "critic", "wasserstein", "balance", "encoder_steps")
HINT = "lower baselines.dccs.lr"
CHECKPOINT_KIND = "baseline_dccs"
SAVE_EVERY_S = 30.0  # resume state is written at an epoch end at most this often


class DCCSClusterer(nn.Module):
    """The trained model: images in [-1, 1] -> (category logits, z = [z_s, softmax z_c]).
    Colour images are converted to grayscale first (paper 4.1, after IIC)."""

    def __init__(self, in_channels: int, image_size: int, style_dim: int, n_clusters: int):
        super().__init__()
        self.grayscale = in_channels == 3
        self.encoder = DCCSEncoder(1 if self.grayscale else in_channels, image_size, style_dim, n_clusters)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.grayscale:
            x = rgb_to_grayscale(x)
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        style, logits, _ = self.encode(x)
        return logits, latent_code(style, logits)


class WassersteinPlateau:
    """The declared stopping rule (DESIGN.md §9): the paper trains "until L^C converges"
    (Algorithm 1) and reads the critic's Wasserstein estimate as convergence (4.2). At each
    check, `update` takes the mean estimate Ŵ of the critic steps since the previous check;
    a check improves when Ŵ falls below best − tolerance·|best|; training stops after
    `patience` checks in a row without improvement."""

    def __init__(self, patience: int, tolerance: float):
        self.patience, self.tolerance = patience, tolerance
        self.best = math.inf
        self.stale = 0
        self.checks: list[float] = []

    def update(self, window_mean: float) -> bool:
        self.checks.append(window_mean)
        if not math.isfinite(self.best) or window_mean < self.best - self.tolerance * abs(self.best):
            self.best, self.stale = window_mean, 0
        else:
            self.stale += 1
        return self.stale >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "stale": self.stale, "checks": list(self.checks)}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.stale, self.checks = state["best"], state["stale"], list(state["checks"])


class _Counters:
    """Progress that a resume must restore: batches and encoder steps so far, the running
    window of Ŵ, and whether training has stopped."""

    def __init__(self):
        self.batches = 0
        self.encoder_steps = 0
        self.window_sum = 0.0
        self.window_count = 0
        self.stop_reason = ""

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


def view_spec(cfg: DCCSConfig, dataset: str) -> ViewSpec:
    """T(x) of Eq. 7 as the official code draws it: RandomResizedCrop(scale crop_min_scale-1,
    ratio 3/4-4/3), ColorJitter(0.4, 0.4, ...) applied to every image (only brightness and
    contrast act on grey images), horizontal flips except for digits."""
    return ViewSpec(
        crop_min_scale=cfg.crop_min_scale, crop_ratio=(3 / 4, 4 / 3), flip=cfg.resolved_flip(dataset),
        rotate_degrees=0.0, translate=0.0, affine_p=0.0, jitter=(cfg.jitter, cfg.jitter, 0.0, 0.0),
        jitter_p=1.0 if cfg.jitter > 0 else 0.0, grayscale_p=0.0, erasing_p=0.0,
    )


def shuffle_channels(x: torch.Tensor) -> torch.Tensor:
    """A random permutation of the colour channels per image (the code's channel shuffle, on
    colour images before graying)."""
    order = torch.rand(x.shape[0], x.shape[1], device=x.device).argsort(dim=1)
    return torch.gather(x, 1, order[:, :, None, None].expand_as(x))


def model_arch(request: TrainRequest) -> dict:
    _, size, _, channels = request.images.shape
    return {"in_channels": channels, "image_size": size, "style_dim": request.config.style_dim,
            "n_clusters": request.n_clusters}


def train(request: TrainRequest) -> TrainedBaseline:
    cfg: DCCSConfig = request.config
    device, precision, generator = request.device, request.precision, request.generator
    n_images, size, _, channels = request.images.shape
    batch_size = cfg.batch_size
    if n_images < batch_size:
        raise UserError(f"baselines.dccs.batch_size = {batch_size} exceeds the {n_images} train images")
    require_rows_per_rank(batch_size, "baselines.dccs.batch_size")
    arch = model_arch(request)
    clusterer = DCCSClusterer(**arch)
    latent_dim = cfg.style_dim + request.n_clusters
    critic = DCCSCritic(latent_dim)
    discriminator = DCCSDiscriminator(clusterer.encoder.feature_dim, latent_dim)
    model = nn.ModuleDict({"clusterer": clusterer, "critic": critic, "discriminator": discriminator}).to(device)
    sync_batchnorm(clusterer, device)  # the encoder's BatchNorm over all ranks (GPUs, DDP only)
    clusterer.to(memory_format=conv_memory_format(device, precision))
    # Fused Adam on the CPU too (one kernel per step instead of ~10 per tensor: 18 % of a
    # step was Adam's per-tensor loop on the 2-core CPU); same update rule.
    betas = (0.5, 0.9)
    optimizer_q = torch.optim.Adam([*clusterer.parameters(), *discriminator.parameters()], lr=cfg.lr, betas=betas,
                                   fused=True)
    optimizer_c = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=betas, fused=True)
    weights = DCCSWeights(mi=cfg.beta_mi, aug=cfg.resolved_beta_aug(channels), adv=cfg.beta_adv)
    spec = view_spec(cfg, request.dataset)
    augment = (FusedViews(spec) if resolve_backend("auto", device.type) == "fused"
               else kornia_views(spec, size)).to(device)

    counters, plateau = _Counters(), WassersteinPlateau(cfg.stop_patience, cfg.stop_tolerance)
    stateful = {"model": model, "optimizer_q": optimizer_q, "optimizer_c": optimizer_c, "counters": counters,
                "plateau": plateau}
    state = restore_training(request, stateful, CURVES)
    history = state.history

    images = images_to_tensor(request.images, device)
    steps_per_epoch = n_images // batch_size
    cycle = cfg.n_critic + 1
    bar = progress(None, total=cfg.max_encoder_steps, initial=counters.encoder_steps, desc="dccs encoder steps")
    saver = PeriodicSaver(request, stateful, state, SAVE_EVERY_S)
    model.train()
    epoch = state.epoch
    while not counters.stop_reason:
        order = torch.randperm(n_images, generator=generator).to(device)
        # `draw`: what every rank must draw alike (MI's in-batch negatives); `mine`: this
        # rank's own draws (prior codes, penalty points). Alone both are the stage's stream.
        draw = step_generator(generator, device)
        mine = step_generator(rank_generator(generator), device) if world().active else draw
        parts = {name: EpochLosses("baseline@dccs", epoch, HINT, check=name in ("loss", "critic"))
                 for name in ("loss", "mi", "aug", "adv_encoder", "critic", "wasserstein")}
        cluster_counts = torch.zeros(request.n_clusters, device=device)
        for step in range(steps_per_epoch):
            batch = images[shard(order[step * batch_size : (step + 1) * batch_size])].float() / 255.0
            if counters.batches % cycle == cfg.n_critic:
                losses = _encoder_step(model, optimizer_q, augment, batch, weights, device, precision, draw)
                cluster_counts += torch.bincount(losses.pop("clusters"), minlength=request.n_clusters)
                for name, value in losses.items():
                    parts[name].add(value, step)
                counters.encoder_steps += 1
                bar.update(1)
            else:
                loss, estimate = _critic_step(model, optimizer_c, batch, cfg, weights, request.n_clusters,
                                              device, precision, mine, batch_size)
                # A per-image mean over this rank's rows: weighted by its share, the mean over
                # ranks is the global batch's for unequal shards too (alone: weight 1).
                weight = share(len(batch), batch_size)
                parts["critic"].add(loss, step, weight)
                parts["wasserstein"].add(estimate, step, weight)
                counters.window_sum = counters.window_sum + estimate * weight  # a tensor: no host sync per step
                counters.window_count += 1
            counters.batches += 1
            if counters.batches % cycle == 0 and counters.encoder_steps % cfg.check_every == 0:
                _check_stop(counters, plateau)
            if counters.encoder_steps >= cfg.max_encoder_steps and not counters.stop_reason:
                counters.stop_reason = f"budget of {cfg.max_encoder_steps} encoder steps"
            if counters.stop_reason:
                break
        for name in parts:
            history[name].append(parts[name].mean())
        history["balance"].append(round(cluster_balance(cluster_counts.cpu().numpy()), 4))
        history["encoder_steps"].append(counters.encoder_steps)
        epoch += 1
        state.epoch = epoch
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(w=f"{history['wasserstein'][-1]:.3f}", balance=f"{history['balance'][-1]:.3f}")
        saver.maybe_save(finished=bool(counters.stop_reason))
    bar.close()
    model.cpu()
    summary = {
        "encoder_steps": counters.encoder_steps,
        "critic_steps": counters.batches - counters.encoder_steps,
        "epochs": epoch,
        "stop_reason": counters.stop_reason,
        "wasserstein_checks": [round(v, 5) for v in plateau.checks],
    }
    return TrainedBaseline(model=clusterer, arch=arch, curves=history, summary=summary)


def _check_stop(counters: _Counters, plateau: WassersteinPlateau) -> None:
    """One stopping check (a host sync, once per `check_every` encoder steps)."""
    if counters.window_count == 0:
        return
    window_sum = counters.window_sum
    if world().active:  # every rank takes the same decision, on the global batches' estimate
        window_sum = all_sum(torch.as_tensor(window_sum, dtype=torch.float64)) / world().size
    window = float(window_sum) / counters.window_count
    counters.window_sum, counters.window_count = 0.0, 0
    if not math.isfinite(window):
        raise NonFiniteLossError(f"baseline@dccs: non-finite Wasserstein estimate ({window}) at encoder step "
                        f"{counters.encoder_steps}; {HINT}")
    if plateau.update(window):
        counters.stop_reason = (f"Wasserstein estimate flat: no fall beyond {plateau.tolerance:.0%} of its best "
                                f"({plateau.best:.4f}) in {plateau.patience} checks")


def _encoder_step(model, optimizer, augment, batch, weights: DCCSWeights, device, precision, draw) -> dict:
    """One Q+D update on one batch (Eq. 12-13): L_Aug on (x, T(x)), L_MI on x's activation and
    code with in-batch negatives, L^Q_Adv through the critic (whose weights this step does not
    update: only Q and D are in the optimizer). Under DDP `batch` is this rank's shard; the
    three losses run on the activations, codes and logits gathered from all ranks (MI's
    negatives come from the whole batch), and the gradients are averaged over ranks."""
    clusterer, critic, discriminator = model["clusterer"], model["critic"], model["discriminator"]
    with autocast(device, precision):
        if weights.aug != 0:
            with torch.no_grad():
                view = batch
                if clusterer.grayscale:
                    view = shuffle_channels(view)
                view = augment(view)
            # T(x) first, then x: two BatchNorm batches in this order, as the official code.
            _, augmented_logits, _ = clusterer.encode(to_model_input(view))
            augmented_logits = gather(augmented_logits)
        style, logits, features = clusterer.encode(to_model_input(batch))
        z = latent_code(style, logits)
        logits, features, z = gather(logits), gather(features), gather(z)
        if weights.mi != 0:
            permutation = torch.randperm(len(z), generator=draw, device=draw.device).to(device)
            mi = mutual_information_loss(discriminator, features, z, permutation)
        else:
            mi = torch.zeros((), device=device)
    aug = augmentation_invariance_loss(logits, augmented_logits) if weights.aug != 0 else torch.zeros((), device=device)
    adv = encoder_adversarial_loss(critic(z.float()))
    loss = encoder_objective(weights, mi, aug, adv)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    average_gradients(optimizer)
    optimizer.step()
    return {"loss": loss.detach(), "mi": mi.detach(), "aug": aug.detach(), "adv_encoder": adv.detach(),
            "clusters": logits.detach().argmax(dim=1)}


def _critic_step(model, optimizer, batch, cfg: DCCSConfig, weights: DCCSWeights, n_clusters: int, device,
                 precision, draw, global_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One C update on one batch (Eq. 11, 14): codes of x from Q (train mode, no gradient)
    against a fresh draw from the prior. Under DDP on this rank's shard, its mean weighted
    (`distributed.share`) so that the averaged gradient is the global batch's."""
    clusterer, critic = model["clusterer"], model["critic"]
    with torch.no_grad(), autocast(device, precision):
        style, logits, _ = clusterer.encode(to_model_input(batch))
        z = latent_code(style, logits).float()
    prior = sample_prior(len(z), cfg.style_dim, n_clusters, cfg.style_sigma, draw, device)
    adversarial, estimate = critic_loss(critic, prior, z, cfg.gp_lambda, generator=draw)
    loss = critic_objective(weights, adversarial)
    optimizer.zero_grad(set_to_none=True)
    backward_mean(loss, len(z), global_batch)
    average_gradients(optimizer)
    optimizer.step()
    return loss.detach(), estimate


def load(path: str | Path) -> DCCSClusterer:
    """The trained model written by the `baseline@dccs` stage."""
    return load_baseline(path, CHECKPOINT_KIND, DCCSClusterer, "DCCS")
