"""Copy the pipeline (not its results) into another folder with a params overlay: used by
the CI metric gate (.ci/gate) and the end-to-end tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

PIPELINE_FILES = ("dvc.yaml", "params.yaml", "stages", "src", ".dvc", ".dvcignore", ".gitignore",
                  "results/baselines/README.md")  # the report stage's folder dependency exists


def deep_update(base: dict, override: dict) -> dict:
    """Merge `override` into `base` in place; `gcc.rounds` is replaced whole, not merged."""
    for key, value in override.items():
        if key == "rounds":
            base[key] = value
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def set_params(params_path: Path, overrides: dict[str, Any]) -> None:
    params = yaml.safe_load(params_path.read_text())
    params_path.write_text(yaml.safe_dump(deep_update(params, overrides), sort_keys=False))


def copy_pipeline(source: Path, dest: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Copy the files that define the pipeline from `source` to `dest` and apply `overrides`."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "tmp", "cache", "*.egg-info")
    for name in PIPELINE_FILES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=ignore)
        elif path.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / name)
    if overrides:
        set_params(dest / "params.yaml", overrides)
    return dest


if __name__ == "__main__":  # python -m gccluster.scratch_project SOURCE DEST [OVERRIDES.yaml]
    import sys

    overlay = yaml.safe_load(Path(sys.argv[3]).read_text()) if len(sys.argv) > 3 else None
    copy_pipeline(Path(sys.argv[1]), Path(sys.argv[2]), overlay)
