"""Shared fixtures: a copy of the project in a temporary folder, with a tiny config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# Small enough for a few seconds per stage on a 2-core CPU, large enough that every code
# path (several batches, several epochs, K-means with restarts) runs.
TINY_OVERRIDES = {
    "pretrain": {"epochs": 2, "batch_size": 128, "width": 8},
    "pseudolabel": {"epochs": 2, "kmeans_n_init": 1, "head_hidden": 32},
    "diffusion": {"epochs": 1, "block_channels": [8, 16], "batch_size": 256, "sample_steps": 2, "grid_per_cluster": 2},
    "gcc": {
        "rounds": {"r1": {"init": "pseudolabel"}, "r2": {"init": "r1"}},
        "final_round": "r2",
        "cluster_epochs": 1,
        "diffusion_epochs": 1,
        "bank_size": 20,
    },
    "evaluate": {"pixel_kmeans_n_init": 1},
}


def deep_update(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if key == "rounds":  # a dict of rounds is replaced whole, not merged
            base[key] = value
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def stage_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["CI"] = "true"  # no progress bars in captured output
    env.setdefault("DVC_NO_ANALYTICS", "1")
    for role in ("AUTHOR", "COMMITTER"):  # `dvc exp run` commits; CI may have no git identity
        env.setdefault(f"GIT_{role}_NAME", "gccluster tests")
        env.setdefault(f"GIT_{role}_EMAIL", "tests@gccluster.invalid")
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=stage_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The pipeline files (not results) copied to a fresh folder, params set to TINY_OVERRIDES."""
    dest = tmp_path / "project"
    dest.mkdir()
    for name in ("dvc.yaml", "stages", "src", ".dvc", ".dvcignore", ".gitignore"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "tmp", "cache", "*.egg-info"))
        elif source.exists():
            shutil.copy2(source, dest / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(deep_update(params, TINY_OVERRIDES), sort_keys=False))
    return dest


def set_params(project: Path, overrides: dict) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(deep_update(params, overrides), sort_keys=False))
