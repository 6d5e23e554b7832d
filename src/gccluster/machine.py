"""What machine this is: the CPU name for benchmarks (README rule: name the CPU beside every
timing) and whether it computes bf16 natively (what `base.precision: auto` asks of a CPU)."""

from __future__ import annotations

import functools
import platform
import subprocess


def cpu_name(lscpu_text: str | None = None) -> str:
    """lscpu's "Model name" with its "CPU family" and "Model" numbers, e.g. "AMD EPYC (family
    25, model 17)": virtual machines often report a bare "AMD EPYC" for both a Zen 1 (family
    23, AVX2 only) and a Zen 4 (family 25, AVX512-BF16), whose timings and bf16 results
    differ. The platform's processor string where lscpu is missing."""
    if lscpu_text is None:
        try:
            lscpu_text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        except OSError:
            return platform.processor()
    fields = {key.strip(): value.strip() for key, _, value in
              (line.partition(":") for line in lscpu_text.splitlines()) if value.strip()}
    if "Model name" not in fields:
        return platform.processor()
    numbers = [f"{label} {fields[key]}" for key, label in (("CPU family", "family"), ("Model", "model"))
               if key in fields]
    return f"{fields['Model name']} ({', '.join(numbers)})" if numbers else fields["Model name"]


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
