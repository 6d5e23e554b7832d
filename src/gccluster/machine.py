"""What machine this is: the CPU name for benchmarks (README rule: name the CPU beside every
timing) and whether it computes bf16 natively (what `base.precision: auto` asks of a CPU)."""

from __future__ import annotations

import functools
import platform
import subprocess


def cpu_name() -> str:
    """lscpu's "Model name", or the platform's processor string where lscpu is missing."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()


# Linux /proc/cpuinfo flags of the bf16 dot-product units oneDNN uses: AMX tiles (Intel
# Sapphire Rapids and later) and the AVX512-BF16 instructions (AMD Zen 4, Intel Cooper Lake).
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes bf16 products in hardware (a `flags` line with `amx_bf16` or
    `avx512_bf16`): the CPUs on which oneDNN's bf16 convolutions and matmuls beat fp32.
    Measured for every step kind of the default (`benchmarks/gpu_throughput.py --presets
    digits`): several times faster on a 2-core Xeon with AMX; on a 2-core AMD EPYC (Zen 4,
    AVX512-BF16, no AMX) 1.2x (the precise-feature method) to 2.5x (SimCLR), never slower.
    Without either flag bf16 is emulated and slower than fp32. False where the file is
    missing (not Linux) or unreadable."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            return any(line.startswith("flags") and any(flag in line.split() for flag in NATIVE_BF16_FLAGS)
                       for line in handle)
    except OSError:
        return False
