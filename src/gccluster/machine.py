"""What machine a benchmark ran on (README rule: name the CPU beside every timing)."""

from __future__ import annotations

import platform
import subprocess


def cpu_name() -> str:
    """lscpu's "Model name", or the platform's processor string where lscpu is missing."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor()
