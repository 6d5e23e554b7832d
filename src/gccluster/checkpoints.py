"""One checkpoint schema for every saved model, and checks on loading it.

A checkpoint is a dict: `kind` (what it holds), `arch` (the keyword arguments that
rebuild the module), `state` (the state_dict), `config` (the stage's params) and `extra`.
Loading checks the kind and the architecture so a wrong or corrupt file is reported by
name and reason instead of a shape error deep inside torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from gccluster.errors import UserError
from gccluster.io import atomic_path


def save_checkpoint(
    path: str | Path, kind: str, module: nn.Module, arch: dict, config: dict | None = None, **extra: Any
) -> None:
    payload = {
        "kind": kind,
        "arch": arch,
        "state": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "config": config or {},
        "extra": extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, kind: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found (run the stage that writes it first)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types on a corrupt file
        raise UserError(f"{path}: corrupt or unreadable checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or not {"kind", "arch", "state"} <= payload.keys():
        raise UserError(f"{path}: not a gccluster checkpoint (missing kind/arch/state)")
    if payload["kind"] != kind:
        raise UserError(f"{path}: holds a {payload['kind']!r}, expected a {kind!r}")
    return payload


def load_state_into(module: nn.Module, payload: dict, path: str | Path) -> nn.Module:
    """Load `payload['state']` strictly; a mismatch names the file and the first bad key."""
    try:
        module.load_state_dict(payload["state"], strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        reason = " ".join(" ".join(first[:2]).split())[:300]
        raise UserError(f"{path}: checkpoint does not match the model ({reason})") from None
    return module
