"""Data-parallel training under torchrun (PyTorch DDP), exact for batch-level losses.

`base.nproc` > 1 runs a training stage as that many processes: the stage script validates
its params, then `launch_workers` starts it again under `torch.distributed.run` (torchrun)
and waits; each worker joins the process group (`join`, gloo on the CPU, NCCL on GPUs) and
trains on its shard of every global batch. Multi-node runs take torchrun's own environment
(`PET_NNODES`, `PET_NODE_RANK`, `PET_RDZV_ENDPOINT`, ...; README, "Several processes").

What makes the objective that of one process with the global batch:
- every rank draws the same global batch order from the stage's generator (the same
  images per step as one process) and takes its contiguous part (`shard`);
- a loss over the batch (NT-Xent's negatives, MMD per cluster, DRC's contrasts, ...) is
  computed on every rank from embeddings gathered from all ranks with autograd (`gather`).
  Each rank then holds the same global loss L; the gather's backward sums the ranks'
  (equal) gradients, so rank r gets `size` times the part of ∂L/∂θ that flows through its
  own rows, and DDP's mean over ranks adds up the parts: ∂L/∂θ exactly. (DCCS and the
  precise-feature method, whose adversarial steps DDP's wrapper does not fit, take the same
  mean with `average_gradients`);
- a per-image mean (Eq. 6) is weighted by `share`, so DDP's mean over ranks of the
  weighted local means is the global mean, for shards of unequal size too;
- what is random per image (augmentations, noise, timesteps) comes from per-rank streams
  derived from the stage's generator (`rank_generator`), so ranks do not repeat each
  other's draws and a resumed run redraws them;
- BatchNorm takes the global batch's statistics (`sync_batchnorm`: PyTorch's SyncBatchNorm
  on GPUs, `RankSyncBatchNorm` on the CPU, where PyTorch's does not run).
What is not exact: per-rank random streams differ from the single stream of one process,
so results match one process in distribution, not bit for bit.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from gccluster.errors import EXIT_USER_ERROR, WORKER_ERRORS_ENV, UserError

# torchrun sets these in every worker; their presence is how a worker knows it is one.
WORKER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """The one rank that writes outputs, resume state and progress bars."""
        return self.rank == 0


def world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def is_worker() -> bool:
    return all(name in os.environ for name in WORKER_ENV) and int(os.environ["WORLD_SIZE"]) > 1


def torchrun_arguments(nproc: int, script: str, argv: list[str]) -> list[str]:
    """torchrun's command line for `nproc` workers per node running `script argv`: one node
    (`--standalone`) unless torchrun's multi-node environment (PET_NNODES etc.) says more."""
    multi_node = int(os.environ.get("PET_NNODES", "1").split(":")[-1]) > 1
    node = [] if multi_node else ["--standalone"]
    return [*node, f"--nproc-per-node={nproc}", script, *argv]


def launch_workers(nproc: int, stage: str) -> None:
    """In the process DVC started: with `nproc` > 1, run this stage script as `nproc`
    torchrun workers and exit with their status (never returns). In a worker, or with
    nproc 1, return at once and let the stage run here.

    A bad input stops the workers with their one-line error, which this process prints
    once (the workers leave it in a folder, `errors.WORKER_ERRORS_ENV`); torchrun's own log
    lines are silenced, as its summary of a failure would bury that line."""
    if nproc <= 1 or is_worker():
        return
    import logging
    import tempfile

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL + 1)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    args = get_args_parser().parse_args(torchrun_arguments(nproc, sys.argv[0], sys.argv[1:]))
    # torchrun would give each worker one thread (and say so); share the cores instead.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // nproc)))
    with tempfile.TemporaryDirectory(prefix="gccluster-workers-") as folder:
        os.environ[WORKER_ERRORS_ENV] = folder
        try:
            run(args)
        except ChildFailedError as failure:
            errors = sorted(Path(folder).glob("rank*.txt"))
            if errors:  # a bad input: the first rank's line, once
                print(errors[0].read_text(), file=sys.stderr)
                raise SystemExit(EXIT_USER_ERROR) from None
            codes = sorted({err.exitcode for err in failure.failures.values()})
            print(f"{stage}: a worker of {nproc} failed (exit {', '.join(map(str, codes))}; its output is above)",
                  file=sys.stderr)
            raise SystemExit(1) from None
        finally:
            del os.environ[WORKER_ERRORS_ENV]
    raise SystemExit(0)


@contextmanager
def workers(nproc: int, device_name: str, stage: str) -> Iterator[World]:
    """The body of a training stage, run by `nproc` torchrun workers (`launch_workers`;
    the launching process exits with their status), or here alone with nproc 1. Yields
    this process's `World`; only `World.is_main` writes the stage's outputs."""
    launch_workers(nproc, stage)
    join(device_name)
    try:
        yield world()
    finally:
        leave()


def join(device_name: str) -> None:
    """In a torchrun worker: join the process group (NCCL when the stage trains on CUDA,
    else gloo) and pin this worker's GPU. Elsewhere: nothing."""
    if not is_worker() or dist.is_initialized():
        return
    _die_with_launcher()
    local_rank = int(os.environ["LOCAL_RANK"])
    cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"base.nproc asks for GPU {local_rank} on this node, which has "
                            f"{torch.cuda.device_count()} (allowed: nproc <= the GPUs per node)")
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")


def _die_with_launcher() -> None:
    """Linux: have the kernel kill this worker when its launcher dies. torchrun starts its
    workers in sessions of their own, so killing the stage (DVC interrupted, a SIGKILL of its
    process group) would leave them training, and writing outputs and clearing the resume
    state after the user has moved on."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the launcher died before the request took effect
        os._exit(1)


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def worker_device(device: torch.device) -> torch.device:
    """This worker's GPU (cuda:LOCAL_RANK) when the stage trains on CUDA."""
    if device.type == "cuda" and world().active:
        return torch.device("cuda", world().local_rank)
    return device


def shard(rows: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous part of a global batch (sizes differ by at most one)."""
    w = world()
    return torch.tensor_split(rows, w.size)[w.rank] if w.active else rows


def require_rows_per_rank(batch_size: int, key: str, minimum: int = 2) -> None:
    """Stop when a global batch leaves some rank fewer than `minimum` rows (BatchNorm in
    training needs two)."""
    w = world()
    if w.active and batch_size < minimum * w.size:
        raise UserError(f"{key} = {batch_size} gives some of the {w.size} processes (base.nproc x nodes) "
                        f"fewer than {minimum} images per step (allowed: >= {minimum * w.size})")


def share(local_count: int, global_count: int) -> float:
    """The weight of a local per-image mean, so that DDP's mean over ranks of
    share · (local mean) is the global mean: size · local_count / global_count (1 alone)."""
    w = world()
    return w.size * local_count / global_count if w.active else 1.0


def backward_mean(loss: torch.Tensor, local_count: int, global_count: int, inputs=None) -> None:
    """Backward of a per-image mean over this rank's `local_count` images of a global batch
    of `global_count`, weighted by `share`, so that the mean over ranks of the gradients (DDP's
    or `average_gradients`) is the gradient of the global batch's mean. Alone: loss.backward()."""
    weight = share(local_count, global_count)
    (loss * weight if weight != 1.0 else loss).backward(inputs=inputs)


def local_rows(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous part of a batch of rows (`shard` of its row indices); alone,
    the batch itself, not a copy."""
    if not world().active:
        return batch
    return batch[shard(torch.arange(len(batch), device=batch.device))]


def _gather_equal(x: torch.Tensor) -> torch.Tensor:
    """All ranks' x (same shape on every rank) concatenated along dim 0, with autograd."""
    if x.requires_grad:
        from torch.distributed import _functional_collectives as collectives

        if hasattr(collectives, "all_gather_single_autograd"):
            return collectives.all_gather_single_autograd(x.contiguous(), 0, dist.group.WORLD) * 1
        from torch.distributed.nn.functional import all_gather  # torch < 2.6

        return torch.cat(all_gather(x.contiguous()))
    parts = [torch.empty_like(x) for _ in range(world().size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows of x, concatenated in rank order (so, for shards of one global
    batch, the global batch), on every rank. Differentiable: the backward sums the ranks'
    gradients of their (equal) losses into the rows each rank produced. Ranks may hold
    different numbers of rows (padded for the collective, then cut). Alone: x itself."""
    w = world()
    if not w.active:
        return x
    counts = _gather_equal(torch.tensor([len(x)], device=x.device)).tolist()
    top = max(counts)
    padded = x if len(x) == top else torch.cat([x, x.new_zeros((top - len(x), *x.shape[1:]))])
    full = _gather_equal(padded)
    keep = torch.cat([torch.arange(r * top, r * top + c, device=x.device) for r, c in enumerate(counts)])
    return full[keep]


def all_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of x over ranks, on every rank (not differentiable). Alone: x."""
    if not world().active:
        return x
    # NCCL reduces GPU tensors only; a CPU tensor (a loss total) goes over and comes back.
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else x.device
    total = x.to(on, copy=True)
    dist.all_reduce(total)
    return total.to(x.device)


def from_main(x: torch.Tensor) -> torch.Tensor:
    """The first rank's x on every rank (a broadcast; not differentiable). Alone: x."""
    if not world().active:
        return x
    x = x.contiguous().clone()
    dist.broadcast(x, src=0)
    return x


def rank_generator(generator: torch.Generator, device: torch.device | None = None) -> torch.Generator:
    """This rank's random stream for the per-image draws of one epoch (augmentations, noise).

    Alone: `generator` itself (results as before). Under DDP: one draw from the shared
    `generator` (the same on every rank, so it stays in step) seeds a stream per rank, and
    the global torch RNG (which the augmentations use) gets a seed of its own from it: seeded
    alike, the two would restart the same numbers every epoch, and the augmentations of a
    step would repeat the noise the returned stream had just drawn.
    """
    w = world()
    if not w.active:
        return generator
    base = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    torch.manual_seed(_rank_seed(base, w.rank, "global"))
    return torch.Generator(device=device or "cpu").manual_seed(_rank_seed(base, w.rank, "stream"))


def _rank_seed(base: int, rank: int, purpose: str) -> int:
    """A seed per (draw of the shared generator, rank, purpose), hashed: the CPU generator
    keeps only a seed's low 32 bits, so seeds that differ above them give the same stream."""
    digest = hashlib.sha256(f"{base}/{rank}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """DDP's gradient arithmetic (the mean over ranks) for the parameters of `optimizer`,
    after backward, as one flat all-reduce. For the adversarial steps that DDP's wrapper
    does not fit: several networks, each run forward several times per step, and the
    gradient penalty's double backward. Alone: nothing."""
    w = world()
    if not w.active:
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch._utils._flatten_dense_tensors(grads)
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else flat.device
    flat = flat.to(on)
    dist.all_reduce(flat)
    flat /= w.size
    for grad, mean in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
        grad.copy_(mean)


class _Forward(nn.Module):
    """One forward for DDP to wrap: `fn(modules, *args)`; its parameters are `modules`'."""

    def __init__(self, modules: nn.Module, fn: Callable):
        super().__init__()
        self.inner = modules
        self.fn = fn

    def forward(self, *args, **kwargs):
        return self.fn(self.inner, *args, **kwargs)


class _SumOverRanks(torch.autograd.Function):
    """x summed over ranks, differentiable: the backward sums the ranks' gradients (the
    convention of `gather`: every rank holds the same global loss)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        total = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


class RankSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, for gloo (CPU)
    processes, where PyTorch's SyncBatchNorm does not run: per channel, the sum, the sum of
    squares and the count of every rank's rows are summed over ranks (differentiably), and
    normalise as one BatchNorm over the whole batch would (biased variance; the running
    variance unbiased, as nn.BatchNorm). Eval mode, or alone: nn.BatchNorm's own forward."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-d input, got {x.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world().active):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        values = x.to(torch.promote_types(x.dtype, torch.float32))  # bf16 in, fp32 statistics
        count = torch.tensor([values.numel() / values.shape[1]], dtype=values.dtype, device=x.device)
        stats = _SumOverRanks.apply(torch.cat([values.sum(dims), (values * values).sum(dims), count]))
        channels = values.shape[1]
        n = stats[-1]
        mean = stats[:channels] / n
        var = (stats[channels : 2 * channels] / n - mean * mean).clamp_min(0.0)
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
            self.running_var.mul_(1 - momentum).add_(momentum * var.detach() * n / (n - 1).clamp_min(1.0))
        out = (values - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out.to(x.dtype)


def _to_rank_sync(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm layer replaced by a RankSyncBatchNorm holding the same
    parameters and buffers (so the optimiser and the checkpoint keys are unchanged)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, RankSyncBatchNorm):
        synced = RankSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)
        if module.affine:
            synced.weight, synced.bias = module.weight, module.bias
        synced.running_mean, synced.running_var = module.running_mean, module.running_var
        synced.num_batches_tracked = module.num_batches_tracked
        synced.train(module.training)
        return synced
    for name, child in list(module.named_children()):
        setattr(module, name, _to_rank_sync(child))
    return module


def sync_batchnorm(modules: nn.Module, device: torch.device) -> None:
    """Under DDP: every BatchNorm layer of `modules` takes its statistics over all ranks, in
    place, keeping its parameters and buffers: PyTorch's SyncBatchNorm on GPUs, and
    `RankSyncBatchNorm` on the CPU (where PyTorch's does not run). Alone: nothing."""
    if not world().active:
        return
    for name, child in list(modules.named_children()):
        synced = nn.SyncBatchNorm.convert_sync_batchnorm(child) if device.type == "cuda" else _to_rank_sync(child)
        setattr(modules, name, synced)


def data_parallel(modules: nn.Module, fn: Callable, device: torch.device,
                  unused_parameters: bool = False) -> Callable:
    """`fn(modules, *args)` as a callable that, under DDP, averages the gradients of
    `modules`' parameters over ranks in backward (DistributedDataParallel). On GPUs the
    BatchNorm layers become SyncBatchNorm first (in place: `modules` keeps its keys).
    Alone: `fn(modules, *args)` unchanged. Checkpoints keep saving `modules` itself.
    `unused_parameters`: some parameters get no gradient in some steps (DDP must look)."""
    if not world().active:
        return lambda *args, **kwargs: fn(modules, *args, **kwargs)
    sync_batchnorm(modules, device)
    # A conv weight with one input channel has both layouts' strides; its gradient may come
    # in the other, which DDP copies into its bucket (a few bytes) with a warning per step.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    wrapper = _Forward(modules, fn)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(wrapper, device_ids=ids, find_unused_parameters=unused_parameters)
