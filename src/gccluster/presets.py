"""Presets: small overlays on the defaults in config.py, written out as a full params.yaml."""

from __future__ import annotations

import re
import shlex
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


def render_params(params: Params, name: str, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The params file: a header naming the command that wrote it (the preset and its --set
    overrides, so that `is_untouched_preset_output` can rebuild it), then every key."""
    command = shlex.join([name, *(arg for text in overrides for arg in ("--set", text))])
    body = yaml.safe_dump(params_to_dict(params), sort_keys=False, default_flow_style=False)
    return HEADER.format(name=command) + body


def is_untouched_preset_output(text: str) -> bool:
    """True when `text` is exactly what the command in its header (`gccluster preset NAME
    [--set KEY=VALUE ...]`) writes today: such a file holds nothing a rewrite would lose."""
    match = re.match(r"# Written by `gccluster preset ([^`]+)`", text)
    if match is None:
        return False
    try:
        name, *rest = shlex.split(match.group(1))
    except ValueError:
        return False
    if len(rest) % 2 or any(flag != "--set" for flag in rest[::2]):
        return False
    overrides = rest[1::2]
    try:
        return text == render_params(preset_params(name, overrides), name, overrides)
    except UserError:
        return False


def write_preset(name: str, path: str | Path, overrides: list[str] | tuple[str, ...] = (),
                 *, force: bool = False) -> Params:
    """Write the preset to `path`. An existing file that a preset did not write as it stands
    (edited by hand, by `dvc exp run -S`, or with comments added) is kept unless `force`:
    rewriting it silently would lose a run's settings."""
    from gccluster.io import write_text

    params = preset_params(name, overrides)
    path = Path(path)
    if not force and path.exists() and not is_untouched_preset_output(path.read_text()):
        raise UserError(f"{path} has changes no preset wrote (edited by hand or by `dvc exp run -S`); "
                        "keep them under another name, or pass --force to overwrite it")
    write_text(path, render_params(params, name, overrides))
    return params
