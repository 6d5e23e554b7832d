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


def parse_override(text: str) -> dict[str, Any]:
    """`a.b.c=value` (value parsed as YAML) -> {"a": {"b": {"c": value}}}."""
    key, sep, value = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. data.local_dir=my_images")
    try:
        parsed = yaml.safe_load(value) if value else None
    except yaml.YAMLError:
        raise UserError(f"--set {text!r}: the value is not valid YAML") from None
    tree: dict[str, Any] = {}
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = parsed
    return tree


def preset_params(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    names = preset_names()
    if name not in names:
        raise UserError(f"unknown preset {name!r} (allowed: {', '.join(names)})")
    overlay = yaml.safe_load((resources.files("gccluster") / "presets" / f"{name}.yaml").read_text()) or {}
    merged = _deep_merge(params_to_dict(Params()), overlay)
    for text in overrides:
        merged = _deep_merge(merged, parse_override(text))
    return validate_params(merged, source=f"preset {name}" + (" with --set" if overrides else ""))


def render_params(params: Params, name: str) -> str:
    body = yaml.safe_dump(params_to_dict(params), sort_keys=False, default_flow_style=False)
    return HEADER.format(name=name) + body


def write_preset(name: str, path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    from gccluster.io import write_text

    params = preset_params(name, overrides)
    write_text(path, render_params(params, name))
    return params
