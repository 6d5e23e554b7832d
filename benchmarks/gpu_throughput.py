"""Throughput of every training step kind, on the machine it runs on (meant for one GPU).

    python benchmarks/gpu_throughput.py --out throughput.json [--quick] [--label after]
    python benchmarks/gpu_throughput.py --out smoke.json --quick --presets fashion_mnist --workers 0   # CPU check

Each kind is timed through the project's own training functions (the code a `dvc repro`
runs), on random uint8 images of the preset's size: a short warm-up call first (kernel
loading, cuDNN autotuning), then a timed call, synchronised. It reports milliseconds per
step and images per second, in fp32 and bf16 (`base.precision`), plus a plain reference
SimCLR step (torchvision transforms on PIL images, a DataLoader with workers, the same
model, a per-step `.item()`), so that speed-ups are ratios measured side by side. The same
script runs against an older checkout (`PYTHONPATH=<old>/src`): it only calls functions
both have, and sets `pretrain.augment.backend` only where the config has it.

Step times are run(warm-up + N steps) - run(warm-up): one call's setup (model build, image
upload, result copy) is left out. (The numbers in benchmarks/gpu/ were taken by the first
version, which divided whole calls by N, and left out the held-out bank in projections.)

The seed methods (DESIGN.md §8: DCCS, DRC, GATCluster, the precise-feature method) are timed
through their step-time scripts (`benchmarks/<name>_step_time.py`, which call each method's
own training steps) with the preset's `baselines.<name>` config, on the grayscale presets only
(those scripts build one-channel networks); each step is timed whole (its loss is read back).

From the step times it projects the wall time of the `fashion_mnist` and `cifar10` presets'
training (pretrain, cluster head, DDPM, rounds with their banks, and on the grayscale presets
the baselines at their budgets): a projection, not a run.

`--quick` shrinks every batch (and the cluster head's data) to a few images, so that a CPU
checks in well under a minute that every kind still runs against the current code; its
numbers mean nothing and it projects nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gccluster.diffusion import build_unet, sample_images, train_diffusion, unet_arch
from gccluster.losses.contrastive import nt_xent
from gccluster.models.backbones import build_backbone
from gccluster.models.heads import ClusterHead, ProjectionHead
from gccluster.presets import preset_params
from gccluster.train.calibrate import Bank, calibrate_clustering
from gccluster.train.pretrain import pretrain_simclr
from gccluster.train.pseudolabel import train_cluster_head
from gccluster.machine import cpu_name

SIZES = {"digits": (16, 1, 1437), "fashion_mnist": (28, 1, 60_000), "cifar10": (32, 3, 50_000)}
BASELINES = ("dccs", "drc", "gatcluster", "precise")
# --quick: batch sizes small enough for a CPU to run every kind in seconds
QUICK_BATCHES = {"pretrain": 32, "pseudolabel": 64, "diffusion": 16, "gcc": 16}
QUICK_BASELINE_BATCHES = {"dccs": {"batch_size": 16}, "drc": {"batch_size": 16},
                          "gatcluster": {"big_batch": 64, "sub_batch": 16}, "precise": {"batch_size": 16}}
QUICK_HEAD_ROWS = 1024


def bench_params(preset: str, quick: bool):
    """The preset's params; with `quick`, every batch shrunk to QUICK_BATCHES."""
    params = preset_params(preset)
    if not quick:
        return params
    update = {name: getattr(params, name).model_copy(update={"batch_size": batch})
              for name, batch in QUICK_BATCHES.items()}
    if hasattr(params, "baselines"):
        update["baselines"] = params.baselines.model_copy(update={
            name: getattr(params.baselines, name).model_copy(update=fields)
            for name, fields in QUICK_BASELINE_BATCHES.items()})
    return params.model_copy(update=update)


def load_benchmark(filename: str):
    """A sibling benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(filename.removesuffix(".py"), Path(__file__).parent / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def steps_seconds(run, steps: int, base: int = 3) -> float:
    """Seconds for `steps` training steps alone: run(base + steps) - run(base), after a warm-up
    run(base), so that building the model, uploading the images and returning the result
    (once per call) are left out."""
    run(base)
    return max(run(base + steps) - run(base), 1e-9)


def random_images(count: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, channels), dtype=np.uint8)


def with_backend(augment, backend: str | None):
    """The augment config with `backend` set, where this checkout's config has that key."""
    if backend is None or "backend" not in type(augment).model_fields:
        return augment
    return augment.model_copy(update={"backend": backend})


def time_simclr(preset: str, params, device, precision: str, steps: int, backend: str | None) -> dict:
    size, channels, _ = SIZES[preset]
    batch = params.pretrain.batch_size
    augment = with_backend(params.pretrain.augment, backend)
    def run(n_steps: int) -> float:
        cfg = params.pretrain.model_copy(update={"epochs": 1, "augment": augment})
        images = random_images(batch * n_steps, size, channels)
        return timed(device, lambda: pretrain_simclr(images, preset, cfg, device, torch.Generator().manual_seed(0),
                                                      precision=precision))
    seconds = steps_seconds(run, steps)
    return {"ms_per_step": 1000 * seconds / steps, "images_per_s": 2 * batch * steps / seconds,
            "batch": batch, "views_per_step": 2 * batch}


def time_ddpm(preset: str, params, device, precision: str, steps: int) -> dict:
    size, channels, _ = SIZES[preset]
    cfg = params.diffusion
    k = params.pseudolabel.n_clusters
    def run(n_steps: int) -> float:
        images = random_images(cfg.batch_size * n_steps, size, channels)
        labels = np.arange(len(images), dtype=np.int64) % k
        unet = build_unet(**unet_arch(cfg, size, channels, k))
        return timed(device, lambda: train_diffusion(unet, images, labels, cfg, 1, cfg.lr, device,
                                                      torch.Generator().manual_seed(0), "bench", precision=precision))
    seconds = steps_seconds(run, steps)
    return {"ms_per_step": 1000 * seconds / steps, "images_per_s": cfg.batch_size * steps / seconds,
            "batch": cfg.batch_size}


def time_ddim(preset: str, params, device, precision: str, count: int) -> dict:
    size, channels, _ = SIZES[preset]
    cfg = params.diffusion
    k = params.pseudolabel.n_clusters
    unet = build_unet(**unet_arch(cfg, size, channels, k))
    labels = np.arange(count, dtype=np.int64) % k
    # warm-up at the timed call's batch shape (cuDNN picks kernels per shape)
    sample_images(unet, cfg, labels[: min(count, 4096)], device, torch.Generator().manual_seed(0), precision=precision)
    seconds = timed(device, lambda: sample_images(unet, cfg, labels, device, torch.Generator().manual_seed(0),
                                                  precision=precision))
    return {"images_per_s": count / seconds, "sample_steps": cfg.sample_steps, "sampler": cfg.sampler}


def time_gcc(preset: str, params, device, precision: str, steps: int) -> dict:
    size, channels, _ = SIZES[preset]
    # min_balance 0: random images collapse the clusters, which is not what is timed here
    cfg = params.gcc.model_copy(update={"cluster_epochs": 1, "min_balance": 0.0})
    k = params.pseudolabel.n_clusters
    def run(n_steps: int) -> float:
        real = random_images(cfg.batch_size * n_steps, size, channels, seed=1)
        bank = Bank(random_images(len(real), size, channels, seed=2), np.arange(len(real), dtype=np.int64) % k)
        backbone = build_backbone(params.pretrain.backbone, channels, size, params.pretrain.width,
                                  params.pretrain.readout)
        head = ClusterHead(backbone.feature_dim, k, params.pseudolabel.head_hidden)
        return timed(device, lambda: calibrate_clustering(backbone, head, real, bank, cfg, device,
                                                           torch.Generator().manual_seed(0), "bench",
                                                           precision=precision))
    seconds = steps_seconds(run, steps)
    return {"ms_per_step": 1000 * seconds / steps, "real_images_per_s": cfg.batch_size * steps / seconds,
            "batch": cfg.batch_size}


def time_head(preset: str, params, device, epochs: int, rows: int | None = None) -> dict:
    n = rows or SIZES[preset][2]
    backbone = build_backbone(params.pretrain.backbone, SIZES[preset][1], SIZES[preset][0], params.pretrain.width,
                              params.pretrain.readout)
    features = np.random.default_rng(0).standard_normal((n, backbone.feature_dim)).astype(np.float32)
    labels = np.arange(n, dtype=np.int64) % params.pseudolabel.n_clusters
    def run(n_epochs: int) -> float:
        cfg = params.pseudolabel.model_copy(update={"epochs": n_epochs})
        return timed(device, lambda: train_cluster_head(features, labels, cfg, device, torch.Generator().manual_seed(0)))
    run(1)
    return {"s_per_epoch": run(epochs) / epochs, "batch": params.pseudolabel.batch_size}


def reference_transform(preset: str):
    """The preset's views with torchvision's PIL transforms (the usual SimCLR input pipeline)."""
    from torchvision import transforms as T

    params = preset_params(preset)
    size = SIZES[preset][0]
    if preset == "cifar10":
        ops = [T.RandomResizedCrop(size, scale=(params.pretrain.augment.crop_min_scale or 0.2, 1.0)),
               T.RandomHorizontalFlip(), T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
               T.RandomGrayscale(p=0.2), T.ToTensor()]
    else:  # the grayscale policy's defaults
        ops = [T.RandomResizedCrop(size, scale=(0.5, 1.0)), T.RandomHorizontalFlip(),
               T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8), T.ToTensor(),
               T.RandomErasing(p=0.3, scale=(0.02, 0.2), ratio=(0.3, 3.3), value=0)]
    return T.Compose(ops)


class TwoViews(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, transform):
        from PIL import Image

        mode = "L" if images.shape[-1] == 1 else "RGB"
        self.images = [Image.fromarray(image.squeeze(-1) if mode == "L" else image, mode) for image in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        return self.transform(image), self.transform(image)


def time_reference_simclr(preset: str, params, device, precision: str, steps: int, workers: int) -> dict:
    """A plain SimCLR loop: PIL + torchvision transforms in DataLoader workers, the same
    backbone and projector, Adam, bf16 autocast where asked, `.item()` every step."""
    size, channels, _ = SIZES[preset]
    batch = params.pretrain.batch_size
    images = random_images(batch * (steps + 3), size, channels)
    loader = torch.utils.data.DataLoader(TwoViews(images, reference_transform(preset)), batch_size=batch,
                                         shuffle=True, num_workers=workers, drop_last=True,
                                         pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    backbone = build_backbone(params.pretrain.backbone, channels, size, params.pretrain.width, params.pretrain.readout)
    model = torch.nn.Sequential(backbone, ProjectionHead(backbone.feature_dim, params.pretrain.projection_dim)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    use_bf16 = precision == "bf16"
    def step(view_a, view_b) -> float:
        x = torch.cat([view_a, view_b]).to(device, non_blocking=True) * 2 - 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            z = model(x)
        loss = nt_xent(z[:batch], z[batch:], params.pretrain.temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()
    iterator = iter(loader)
    for _ in range(3):
        step(*next(iterator))
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(*next(iterator))
    synchronize(device)
    seconds = time.perf_counter() - start
    return {"ms_per_step": 1000 * seconds / steps, "images_per_s": 2 * batch * steps / seconds, "workers": workers}


def time_baseline(name: str, preset: str, params, device, precision: str, steps: int) -> dict:
    """Step times of seed method `name` with the preset's `baselines.<name>` config at the
    preset's size, by its step-time script (the method's own training steps; the four scripts
    share `time_steps`'s signature)."""
    script = load_benchmark(f"{name}_step_time.py")
    return script.time_steps(SIZES[preset][0], preset, precision, steps, 2, getattr(params.baselines, name), device)


def project_baselines(preset: str, rows: dict, precision: str) -> dict:
    """Training seconds of each seed method at the preset's budget, from its step times (only
    the methods whose row has its times). DCCS: the step cap (its plateau rule may stop it
    earlier); DRC: both heads' passes per epoch; the precise-feature method: its critic and
    classifier steps double from `double_at` of the run where that is set."""
    params = preset_params(preset)
    n = SIZES[preset][2]
    get = lambda name: rows.get(f"{name}/{preset}/{precision}", {})  # noqa: E731
    out = {}
    dccs, drc, gat, precise = (get(name) for name in BASELINES)
    if "encoder_step_ms_median" in dccs:
        cfg = params.baselines.dccs
        out["dccs_s"] = cfg.max_encoder_steps * (cfg.n_critic * dccs["critic_step_ms_median"]
                                                 + dccs["encoder_step_ms_median"]) / 1000
    if "step_ms_median" in drc:
        cfg = params.baselines.drc
        heads = 2 if cfg.overcluster_k else 1
        out["drc_s"] = cfg.epochs * heads * (n // cfg.batch_size) * drc["step_ms_median"] / 1000
    if "iteration_s" in gat:
        out["gatcluster_s"] = params.baselines.gatcluster.iterations * gat["iteration_s"]
    if "critic_ms" in precise:
        cfg = params.baselines.precise
        one = (cfg.n_critic * precise["critic_ms"] + cfg.n_class * precise["classifier_ms"]) / 1000
        doubled = 0 if cfg.double_at is None else cfg.iterations - round(cfg.double_at * cfg.iterations)
        out["precise_s"] = cfg.iterations * (one + precise["generator_ms"] / 1000) + doubled * one
    return out


def project_preset(preset: str, rows: dict, precision: str) -> dict:
    """Training wall time of a preset from the measured step times (seconds): a projection."""
    params = preset_params(preset)
    _, _, n = SIZES[preset]
    get = lambda kind: rows.get(f"{kind}/{preset}/{precision}", {})  # noqa: E731
    simclr, ddpm, gcc, ddim, head = (get("simclr"), get("ddpm"), get("gcc_step"), get("ddim_bank"), get("cluster_head"))
    if not all("ms_per_step" in row for row in (simclr, ddpm, gcc)) or "images_per_s" not in ddim:
        return {}
    pretrain = params.pretrain.epochs * (n // params.pretrain.batch_size) * simclr["ms_per_step"] / 1000
    diffusion = params.diffusion.epochs * -(-n // params.diffusion.batch_size) * ddpm["ms_per_step"] / 1000
    gcc_cfg = params.gcc
    bank_size = gcc_cfg.bank_size or n
    # one bank per clustering epoch (or one per round), plus the round's held-out bank
    banks = (gcc_cfg.cluster_epochs if gcc_cfg.bank_refresh == "epoch" else 1) + 1
    per_round = (gcc_cfg.cluster_epochs * -(-n // gcc_cfg.batch_size) * gcc["ms_per_step"] / 1000
                 + banks * bank_size / ddim["images_per_s"]
                 + gcc_cfg.diffusion_epochs * -(-n // params.diffusion.batch_size) * ddpm["ms_per_step"] / 1000)
    rounds = len(gcc_cfg.rounds)
    head_s = params.pseudolabel.epochs * head.get("s_per_epoch", 0.0)
    total = pretrain + head_s + diffusion + rounds * per_round
    baselines = project_baselines(preset, rows, precision)
    return {"pretrain_s": pretrain, "cluster_head_s": head_s, "diffusion_s": diffusion, "round_s": per_round,
            "rounds": rounds, "total_s": total, **baselines,
            "total_with_baselines_s": total + sum(baselines.values()),
            "note": "training steps and banks only; data, K-means, evaluate and figures not included"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--label", default="", help="a name for this checkout (e.g. before, after)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every kind runs")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--presets", default="fashion_mnist,cifar10")
    parser.add_argument("--kinds", default=",".join(["simclr", "simclr_kornia", "reference", "ddpm", "ddim", "gcc",
                                                     "head", *BASELINES]),
                        help="comma-separated subset of the kinds to time")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--steps", type=int, default=None, help="timed steps of every step kind (CPU runs)")
    parser.add_argument("--ddim-images", type=int, default=None, help="images per DDIM timing")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    steps = {"simclr": 2, "ddpm": 2, "gcc": 2, "ddim": 16, "head": 1, "baseline": 2} if args.quick else \
            {"simclr": 30, "ddpm": 60, "gcc": 40, "ddim": 8192, "head": 2, "baseline": 20}
    if args.steps is not None:
        steps.update(simclr=args.steps, ddpm=args.steps, gcc=args.steps, baseline=args.steps)
    if args.ddim_images is not None:
        steps["ddim"] = args.ddim_images
    kinds = set(args.kinds.split(","))
    info = {"label": args.label, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "cpu": cpu_name(), "torch": torch.__version__, "python": sys.version.split()[0], "quick": args.quick}
    rows: dict[str, dict] = {}

    def record(name: str, fn) -> None:
        start = time.perf_counter()
        try:
            rows[name] = fn()
        except Exception as error:  # one failing kind must not lose the others' numbers
            rows[name] = {"error": f"{type(error).__name__}: {error}"}
        rows[name]["wall_s"] = round(time.perf_counter() - start, 2)
        print(f"{name:40s} {json.dumps(rows[name])}", flush=True)
        args.out.write_text(json.dumps({"info": info, "rows": rows}, indent=2))

    unknown = kinds - set(parser.get_default("kinds").split(","))
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; allowed: {parser.get_default('kinds')}")
    for preset in args.presets.split(","):
        if preset not in SIZES:
            parser.error(f"unknown preset {preset!r}; allowed: {', '.join(SIZES)}")
        params = bench_params(preset, args.quick)
        for precision in args.precisions.split(","):
            key = f"{preset}/{precision}"
            if "simclr" in kinds:
                record(f"simclr/{key}", lambda: time_simclr(preset, params, device, precision, steps["simclr"],
                                                             None))
            if "simclr_kornia" in kinds and device.type == "cuda":
                record(f"simclr_kornia/{key}", lambda: time_simclr(preset, params, device, precision,
                                                                    steps["simclr"], "kornia"))
            if "reference" in kinds:
                record(f"reference_simclr/{key}", lambda: time_reference_simclr(preset, params, device, precision,
                                                                                 steps["simclr"], args.workers))
            if "ddpm" in kinds:
                record(f"ddpm/{key}", lambda: time_ddpm(preset, params, device, precision, steps["ddpm"]))
            if "ddim" in kinds:
                count = steps["ddim"] if preset != "cifar10" else max(16, steps["ddim"] // 4)
                record(f"ddim_bank/{key}", lambda: time_ddim(preset, params, device, precision, count))
            if "gcc" in kinds:
                record(f"gcc_step/{key}", lambda: time_gcc(preset, params, device, precision, steps["gcc"]))
            if "head" in kinds:
                record(f"cluster_head/{key}", lambda: time_head(preset, params, device, steps["head"],
                                                                QUICK_HEAD_ROWS if args.quick else None))
            for name in BASELINES:
                if name in kinds and SIZES[preset][1] == 1:
                    record(f"{name}/{key}", lambda: time_baseline(name, preset, params, device, precision,
                                                                  steps["baseline"]))
    # quick numbers come from shrunken batches: nothing to project from them
    projections = {} if args.quick else {
        f"{preset}/{precision}": project_preset(preset, rows, precision)
        for preset in args.presets.split(",") for precision in args.precisions.split(",")}
    args.out.write_text(json.dumps({"info": info, "rows": rows, "projections": projections}, indent=2))
    print(f"\n{info}")
    print(f"{'kind':40s} {'ms/step':>9s} {'images/s':>10s}")
    for name, row in rows.items():
        rate = row.get("images_per_s", row.get("real_images_per_s", float("nan")))
        if name.split("/")[0] in BASELINES and "error" not in row:
            print(f"{name:40s} {json.dumps({k: v for k, v in row.items() if k != 'wall_s'})}")
            continue
        print(f"{name:40s} {row.get('ms_per_step', float('nan')):9.2f} {rate:10.0f}" if "error" not in row
              else f"{name:40s} {row['error'][:80]}")
    for name, projection in projections.items():
        if projection:
            print(f"projected training of {name}: {projection['total_s'] / 60:.1f} min "
                  f"(pretrain {projection['pretrain_s']:.0f} s, DDPM {projection['diffusion_s']:.0f} s, "
                  f"round {projection['round_s']:.0f} s x {projection['rounds']}); with the baselines "
                  f"{projection['total_with_baselines_s'] / 60:.1f} min "
                  f"({', '.join(f'{k[:-2]} {v:.0f} s' for k, v in projection.items() if k[:-2] in BASELINES)})")


if __name__ == "__main__":
    main()
