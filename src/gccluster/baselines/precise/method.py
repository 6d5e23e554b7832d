"""Training of the precise-feature method (Gan et al. 2021, Algorithm 1).

Per generator iteration t: `n_critic` critic updates (Eq. 5), each on a new batch of real
train images (full batches from shuffled passes) and a new draw of (y, z); then `n_class`
classifier updates (Eq. 6) on new generated batches only (C never sees a real image in
training); then one generator update (Eq. 7) with η_t of Eq. 8 on a fresh batch, through D
and C, whose parameters it leaves unchanged. y ~ U{0..K-1} as a one-hot, z ~ N(0, I);
Adam(lr, betas 0.5, 0.9), one optimizer per network. The order is the paper's (D, C, then G;
the code runs G first from its second iteration on, which differs only at the two ends). A
fixed budget of generator iterations; the final iterate is the result, read out as
argmax C(x) on the real images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
from gccluster.baselines.precise.losses import classifier_loss, critic_loss, eta_schedule, generator_loss
from gccluster.baselines.precise.model import PreciseClusterer, PreciseCritic, unit_to_uint8
from gccluster.baselines.precise.params import PreciseConfig
from gccluster.distributed import average_gradients, backward_mean, rank_generator, require_rows_per_rank, shard, share
from gccluster.errors import UserError
from gccluster.metrics import cluster_balance
from gccluster.runtime import autocast, conv_memory_format, images_to_tensor, progress, step_generator
from gccluster.train.optim import EpochLosses

PARTS = ("loss", "reality", "entropy", "critic", "wasserstein", "gp", "classifier", "fake_acc")
# One loss.csv row per `log_every` generator iterations ("epoch" = row number): the window
# means of PARTS, η at the row's last update, and on the fixed real probe images C's mean
# predictive entropy and the balance of its argmax (label-free diagnostics, B.7).
CURVES = (*PARTS, "eta", "real_entropy", "balance", "iteration")
HINT = "lower baselines.precise.lr (an epoch here is one loss.csv row of log_every generator iterations)"
CHECKPOINT_KIND = "baseline_precise"
SAVE_EVERY_S = 30.0  # resume state is written at a row end at most this often
PAPER_ITERATIONS = 900_000


def sample_codes(n: int, n_clusters: int, noise_dim: int, draw: torch.Generator,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1, lines 4, 14, 21: cluster ids y ~ U{0..K-1} (n,) and noise z ~ N(0, I) (n, noise_dim)."""
    labels = torch.randint(0, n_clusters, (n,), generator=draw, device=draw.device).to(device)
    noise = torch.randn(n, noise_dim, generator=draw, device=draw.device).to(device)
    return labels, noise


def model_arch(request: TrainRequest) -> dict:
    cfg: PreciseConfig = request.config
    _, size, _, channels = request.images.shape
    return {"image_size": size, "channels": channels, "n_clusters": request.n_clusters, "width": cfg.width,
            "noise_dim": cfg.noise_dim}


def train(request: TrainRequest) -> TrainedBaseline:
    cfg: PreciseConfig = request.config
    device, precision, generator = request.device, request.precision, request.generator
    n_images, size, _, channels = request.images.shape
    if n_images < cfg.batch_size:
        raise UserError(f"baselines.precise.batch_size = {cfg.batch_size} exceeds the {n_images} train images")
    require_rows_per_rank(cfg.batch_size, "baselines.precise.batch_size")
    arch = model_arch(request)
    clusterer = PreciseClusterer(**arch)
    critic = PreciseCritic(size, channels, cfg.width)
    networks = nn.ModuleDict({"clusterer": clusterer, "critic": critic}).to(device)
    networks.to(memory_format=conv_memory_format(device, precision))
    g_net, c_net = clusterer.generator, clusterer.classifier
    # Fused Adam: one kernel per step (same update rule).
    optimizers = {name: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.9), fused=True)
                  for name, net in (("g", g_net), ("d", critic), ("c", c_net))}
    batches = ShuffledBatches()
    stateful = {"model": networks, **{f"optimizer_{name}": opt for name, opt in optimizers.items()},
                "batches": batches}
    state = restore_training(request, stateful, CURVES)
    history = state.history

    images = images_to_tensor(request.images, device)
    # Evenly spaced train images (no labels read): the same probe at every row.
    probe = images[torch.linspace(0, n_images - 1, min(cfg.probe_images, n_images)).long().to(device)]
    tau = cfg.resolved_tau()
    saver = PeriodicSaver(request, stateful, state, SAVE_EVERY_S)
    bar = progress(None, total=cfg.iterations, initial=state.epoch, desc="precise generator iterations")
    iteration = state.epoch
    while iteration < cfg.iterations:
        row = len(history["iteration"])
        end = min(cfg.iterations, (iteration // cfg.log_every + 1) * cfg.log_every)
        draw = step_generator(rank_generator(generator), device)  # alone: as before
        parts = {name: EpochLosses("baseline@precise", row, HINT, check=name in ("loss", "critic", "classifier"))
                 for name in PARTS}
        # Every step's parts are means over this rank's rows: weighted by its share, the
        # curves are the global batches' means for unequal shards too (alone: weight 1).
        weight = share(rows_here(cfg.batch_size), cfg.batch_size)
        for step, t in enumerate(range(iteration, end)):
            n_critic, n_class = cfg.steps_at(t)
            for _ in range(n_critic):
                real = images[shard(batches.next(n_images, cfg.batch_size, cfg.batch_size, generator)).to(device)]
                for name, value in _critic_step(networks, optimizers["d"], real.float() / 255.0, cfg,
                                                request.n_clusters, device, precision, draw).items():
                    parts[name].add(value, step, weight)
            for _ in range(n_class):
                for name, value in _classifier_step(networks, optimizers["c"], cfg, request.n_clusters, device,
                                                    precision, draw).items():
                    parts[name].add(value, step, weight)
            eta = eta_schedule(t, cfg.eta0, cfg.gamma, tau)
            for name, value in _generator_step(networks, optimizers["g"], cfg, request.n_clusters, eta, device,
                                               precision, draw).items():
                parts[name].add(value, step, weight)
            bar.update(1)
        iteration = end
        for name, values in parts.items():
            history[name].append(values.mean())
        entropy, balance = probe_diagnostics(c_net, probe, request.n_clusters, device, precision)
        history["eta"].append(eta)
        history["real_entropy"].append(round(entropy, 5))
        history["balance"].append(round(balance, 4))
        history["iteration"].append(iteration)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(w=f"{history['wasserstein'][-1]:.3f}", h_real=f"{entropy:.3f}", balance=f"{balance:.3f}")
        state.epoch = iteration
        saver.maybe_save(finished=iteration >= cfg.iterations)
    bar.close()
    samples = sample_grid(g_net, request.n_clusters, cfg.grid_columns, cfg.noise_dim, generator, device, precision)
    networks.cpu()
    clusterer.eval()
    summary = {
        "iterations": cfg.iterations,
        "paper_fraction": round(cfg.iterations / PAPER_ITERATIONS, 8),
        "width": cfg.width,
        "tau": tau,
        "eta_final": round(eta_schedule(cfg.iterations - 1, cfg.eta0, cfg.gamma, tau), 4),
        "critic_steps": sum(cfg.steps_at(t)[0] for t in range(cfg.iterations)),
        "classifier_steps": sum(cfg.steps_at(t)[1] for t in range(cfg.iterations)),
        "real_entropy": history["real_entropy"][-1],
        "wasserstein": round(history["wasserstein"][-1], 5),
    }
    return TrainedBaseline(model=clusterer, arch=arch, curves=dict(history), summary=summary,
                           figures={"samples": (samples, cfg.grid_columns)})


def _critic_step(networks, optimizer, real: torch.Tensor, cfg: PreciseConfig, n_clusters: int, device, precision,
                 draw) -> dict[str, torch.Tensor]:
    """One D update (Eq. 5) on a real batch and a generated one of the same size. Under DDP
    on this rank's shard, its mean weighted (`distributed.share`) and the gradients averaged over
    ranks: the global batch's gradient (the penalty is per image, so this is exact)."""
    g_net, critic = networks["clusterer"].generator, networks["critic"]
    labels, noise = sample_codes(len(real), n_clusters, cfg.noise_dim, draw, device)
    with torch.no_grad(), autocast(device, precision):
        fake = g_net(labels, noise)
    with autocast(device, precision):
        loss, estimate, penalty = critic_loss(critic, real, fake.to(real.dtype), cfg.gp_lambda, generator=draw)
    _backward_mean(loss, optimizer, len(real), cfg.batch_size)
    optimizer.step()
    return {"critic": loss.detach(), "wasserstein": estimate, "gp": penalty}


def _classifier_step(networks, optimizer, cfg: PreciseConfig, n_clusters: int, device, precision,
                     draw) -> dict[str, torch.Tensor]:
    """One C update (Eq. 6) on a generated batch with its fake labels; also C's accuracy on
    that batch before the update (diagnostic (3) of B.7: it should approach 1)."""
    g_net, c_net = networks["clusterer"].generator, networks["clusterer"].classifier
    labels, noise = sample_codes(rows_here(cfg.batch_size), n_clusters, cfg.noise_dim, draw, device)
    with torch.no_grad(), autocast(device, precision):
        fake = g_net(labels, noise)
    with autocast(device, precision):
        logits, _ = c_net(fake)
    loss = classifier_loss(logits, labels)
    _backward_mean(loss, optimizer, len(labels), cfg.batch_size)
    optimizer.step()
    return {"classifier": loss.detach(), "fake_acc": (logits.detach().argmax(dim=1) == labels).float().mean()}


def _generator_step(networks, optimizer, cfg: PreciseConfig, n_clusters: int, eta: float, device, precision,
                    draw) -> dict[str, torch.Tensor]:
    """One G update (Eq. 7): the gradient flows through D and C into G's parameters only
    (`backward(inputs=...)`), so D and C are unchanged and keep no gradient from it."""
    g_net = networks["clusterer"].generator
    labels, noise = sample_codes(rows_here(cfg.batch_size), n_clusters, cfg.noise_dim, draw, device)
    with autocast(device, precision):
        fake = g_net(labels, noise)
        scores = networks["critic"](fake)
        logits, _ = networks["clusterer"].classifier(fake)
    loss, reality, entropy = generator_loss(scores, logits, labels, eta)
    _backward_mean(loss, optimizer, len(labels), cfg.batch_size, inputs=list(g_net.parameters()))
    optimizer.step()
    return {"loss": loss.detach(), "reality": reality, "entropy": entropy}


def rows_here(batch_size: int) -> int:
    """This rank's part of a generated batch of `batch_size` (alone: all of it)."""
    return len(shard(torch.arange(batch_size)))


def _backward_mean(loss: torch.Tensor, optimizer, local: int, global_batch: int, inputs=None) -> None:
    """Gradients of the global batch's mean from this rank's mean of `local` images: the
    loss weighted by `distributed.share`, then averaged over ranks (alone: loss.backward())."""
    optimizer.zero_grad(set_to_none=True)
    backward_mean(loss, local, global_batch, inputs=inputs)
    average_gradients(optimizer)


@torch.no_grad()
def probe_diagnostics(c_net: nn.Module, probe: torch.Tensor, n_clusters: int, device, precision,
                      chunk: int = 500) -> tuple[float, float]:
    """On real images (uint8), no labels: C's mean predictive entropy E_x H(q(y|x)) (the
    quantity the method minimises, Eq. 1-3; ln K when C is uninformed) and the balance of
    its argmax (the prior is uniform)."""
    entropies, counts = [], torch.zeros(n_clusters, device=device)
    for start in range(0, len(probe), chunk):
        with autocast(device, precision):
            logits, _ = c_net(probe[start : start + chunk].float() / 255.0)
        log_q = torch.log_softmax(logits.float(), dim=1)
        entropies.append(-(log_q.exp() * log_q).sum(dim=1))
        counts += torch.bincount(logits.argmax(dim=1), minlength=n_clusters)
    return float(torch.cat(entropies).mean()), cluster_balance(counts.cpu().numpy())


@torch.no_grad()
def sample_grid(g_net: nn.Module, n_clusters: int, columns: int, noise_dim: int, generator: torch.Generator,
                device, precision) -> np.ndarray:
    """uint8 (K·columns, H, W, C): row k is G(k, z_j) for j < columns, the same z_j in every
    row, so that a column shows one noise vector under each cluster id."""
    noise = torch.randn(columns, noise_dim, generator=generator).to(device).repeat(n_clusters, 1)
    labels = torch.arange(n_clusters, device=device).repeat_interleave(columns)
    with autocast(device, precision):
        images = g_net(labels, noise)
    return unit_to_uint8(images.float()).cpu().numpy()


def load(path: str | Path) -> PreciseClusterer:
    """The trained model written by the `baseline@precise` stage."""
    return load_baseline(path, CHECKPOINT_KIND, PreciseClusterer, "precise-feature")
