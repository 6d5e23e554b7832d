"""Where the DDPM training step's time goes on a GPU: eager vs torch.compile, batch sizes.

    python benchmarks/ddpm_step_probe.py --out probe.json [--deadline-s 200] [--quick]

The step is Eq. 6's loss (`diffusion.diffusion_loss`) + backward + fused Adam on the
`fashion_mnist` preset's U-Net, random 28 px images. Variants, in this order, each skipped
once the deadline is near: eager at batch 128 (the preset's) and 512 in fp32 and bf16, then
torch.compile of the U-Net (mode "default", then "max-autotune-no-cudagraphs") at batch 128
in fp32; compile time reported apart from the step time. A probe to decide what to build,
not a part of the pipeline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gccluster.diffusion import build_unet, diffusion_loss, make_scheduler, unet_arch
from gccluster.presets import preset_params


def profile_steps(step, path: Path, device: torch.device) -> None:
    """torch.profiler over 5 steps: ops by device time and by host time, and the step's
    wall time split into host-side launch work and device work."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(5):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    table = prof.key_averages()
    sort_device = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    path.write_text("by device time\n" + table.table(sort_by=sort_device, row_limit=30)
                    + "\nby host time\n" + table.table(sort_by="self_cpu_time_total", row_limit=30)
                    + f"\nop calls per step: {sum(k.count for k in table) / 5:.0f}\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--deadline-s", type=float, default=200.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also profile 5 eager steps (batch 128, fp32) and write the op tables here")
    args = parser.parse_args()
    start = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    cfg = preset_params("fashion_mnist").diffusion
    steps = 3 if args.quick else 40
    rows: dict[str, dict] = {}

    def write() -> None:
        name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
        args.out.write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run(name: str, batch: int, precision: str, compile_mode: str | None) -> None:
        if time.perf_counter() - start > args.deadline_s - 40:
            rows[name] = {"skipped": "deadline"}
            return
        torch.manual_seed(0)
        unet = build_unet(**unet_arch(cfg, 28, 1, 10)).to(device).train()
        model = torch.compile(unet, mode=compile_mode) if compile_mode else unet
        optimizer = torch.optim.Adam(unet.parameters(), lr=cfg.lr, fused=device.type == "cuda")
        scheduler = make_scheduler(cfg)
        x0 = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1
        labels = torch.randint(0, 10, (batch,), device=device)
        generator = torch.Generator().manual_seed(0)

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = diffusion_loss(model, scheduler, x0, labels, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        sync()
        t0 = time.perf_counter()
        for _ in range(3):  # warm-up (and compilation)
            step()
        sync()
        warm = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        seconds = time.perf_counter() - t0
        if args.profile is not None and compile_mode is None and batch == 128 and precision == "fp32":
            profile_steps(step, args.profile, device)
        rows[name] = {"ms_per_step": 1000 * seconds / steps, "images_per_s": batch * steps / seconds,
                      "warmup_s": warm, "batch": batch, "precision": precision, "compile": compile_mode}
        print(f"{name:36s} {rows[name]['ms_per_step']:8.2f} ms/step {rows[name]['images_per_s']:9.0f} img/s "
              f"(warm-up {warm:.1f} s)", flush=True)
        write()

    for batch in (128, 512):
        for precision in ("fp32", "bf16"):
            run(f"eager/b{batch}/{precision}", batch, precision, None)
    for mode in ("default", "max-autotune-no-cudagraphs"):
        try:
            run(f"compile-{mode}/b128/fp32", 128, "fp32", mode)
        except Exception as error:  # a compile failure is a finding, not a crash
            rows[f"compile-{mode}/b128/fp32"] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
            print(rows[f"compile-{mode}/b128/fp32"], flush=True)
    write()


if __name__ == "__main__":
    main()
