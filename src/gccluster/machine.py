"""What machine this is: the CPU name for benchmarks (README rule: name the CPU beside every
timing) and whether it has AMX bf16 (what `base.precision: auto` asks of a CPU)."""

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


@functools.cache
def cpu_has_amx_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has AMX bf16 tiles (Linux `flags` line `amx_bf16`): the CPUs on which
    oneDNN's bf16 convolutions and matmuls beat fp32 by several times. False where the file
    is missing (not Linux) or unreadable."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in handle)
    except OSError:
        return False
