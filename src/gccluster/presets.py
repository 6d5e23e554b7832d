"""Presets: small overlays on the defaults in config.py, written out as a full params.yaml."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gccluster.config import Params, params_to_dict, validate_params
from gccluster.errors import UserError

HEADER = (
    "# Written by `gccluster preset {name}`. Every key is documented in the README\n"
    "# (section \"Parameters\") and validated by src/gccluster/config.py.\n"
)


def preset_names() -> list[str]:
    folder = resources.files("gccluster") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def preset_params(name: str) -> Params:
    names = preset_names()
    if name not in names:
        raise UserError(f"unknown preset {name!r} (allowed: {', '.join(names)})")
    overlay = yaml.safe_load((resources.files("gccluster") / "presets" / f"{name}.yaml").read_text()) or {}
    return validate_params(_deep_merge(params_to_dict(Params()), overlay), source=f"preset {name}")


def render_params(params: Params, name: str) -> str:
    body = yaml.safe_dump(params_to_dict(params), sort_keys=False, default_flow_style=False)
    return HEADER.format(name=name) + body


def write_preset(name: str, path: str | Path) -> Params:
    from gccluster.io import write_text

    params = preset_params(name)
    write_text(path, render_params(params, name))
    return params
