"""Rebuild models from their checkpoints, with clear errors for wrong or corrupt files."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from gccluster.checkpoints import load_checkpoint, load_state_into
from gccluster.errors import UserError
from gccluster.models.backbones import BACKBONES, build_backbone
from gccluster.models.heads import ClusterHead


def load_backbone(path: str | Path) -> nn.Module:
    payload = load_checkpoint(path, "backbone")
    arch = payload["arch"]
    if arch.get("name") not in BACKBONES:
        raise UserError(f"{path}: unknown backbone {arch.get('name')!r} (allowed: {', '.join(BACKBONES)})")
    try:
        backbone = build_backbone(**arch)
    except (TypeError, ValueError) as err:
        raise UserError(f"{path}: cannot rebuild the backbone from {arch} ({err})") from None
    return load_state_into(backbone, payload, path).eval()


def load_cluster_head(path: str | Path, expected_in_dim: int, expected_clusters: int | None = None) -> ClusterHead:
    payload = load_checkpoint(path, "cluster_head")
    arch = payload["arch"]
    if arch.get("in_dim") != expected_in_dim:
        raise UserError(
            f"{path}: cluster head expects {arch.get('in_dim')}-d features, the backbone gives {expected_in_dim}"
        )
    if expected_clusters is not None and arch.get("n_clusters") != expected_clusters:
        raise UserError(
            f"{path}: cluster head has {arch.get('n_clusters')} clusters, expected {expected_clusters}"
        )
    head = ClusterHead(arch["in_dim"], arch["n_clusters"], arch["hidden_dim"])
    return load_state_into(head, payload, path).eval()
