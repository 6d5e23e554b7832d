"""Shared fixtures: a copy of the project in a temporary folder, with a tiny config."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gccluster.scratch_project import copy_pipeline
from gccluster.scratch_project import set_params as set_project_params

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
        # Two epochs of pretraining leave a head that uses few clusters: not the collapse the
        # guard is for (tests/test_calibrate.py checks the guard itself).
        "min_balance": 0.0,
    },
    "evaluate": {"pixel_kmeans_n_init": 1},
    "figures": {"tsne_samples": 100, "grid_per_cluster": 2},
    "baselines": {"run": ["dccs", "drc", "gatcluster", "precise"],
                  "dccs": {"batch_size": 32, "max_encoder_steps": 5, "check_every": 5},
                  "drc": {"batch_size": 32, "epochs": 1, "width": 8, "overcluster_k": 8},
                  "gatcluster": {"iterations": 2, "big_batch": 200, "repeats": 1, "width": 4, "kmeans_n_init": 2},
                  "precise": {"iterations": 4, "tau": 2, "log_every": 2, "width": 2, "batch_size": 32,
                              "probe_images": 50}},
}


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
    return copy_pipeline(ROOT, tmp_path / "project", TINY_OVERRIDES)


def set_params(project: Path, overrides: dict) -> None:
    set_project_params(project / "params.yaml", overrides)


STAGE_APPS: dict[str, object] = {}


def stage_app(name: str):
    """The typer app of stages/<name>.py, imported once."""
    if name not in STAGE_APPS:
        spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        STAGE_APPS[name] = module.app
    return STAGE_APPS[name]


def invoke(stage: str, *args: str):
    """Run a stage in this process, in the current folder; progress bars off (CI=true), as
    the stage output a test inspects must not depend on the caller's environment."""
    return CliRunner().invoke(stage_app(stage), list(args), env={"CI": "true"}, catch_exceptions=False)


def run_stages_in_process(project: Path, stages: tuple[str, ...]) -> None:
    """Run stages one after the other inside `project` (faster than `dvc repro` for fixtures)."""
    old = Path.cwd()
    os.chdir(project)
    try:
        for stage in stages:
            result = invoke(stage)
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(old)
