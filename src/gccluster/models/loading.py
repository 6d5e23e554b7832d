"""Rebuild models from their checkpoints, with clear errors for wrong or corrupt files."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from gccluster.checkpoints import load_checkpoint, load_state_into
from gccluster.errors import UserError
from gccluster.models.backbones import BACKBONES, build_backbone
from gccluster.models.heads import ClusterHead, ProjectionHead


def load_backbone(path: str | Path) -> nn.Module:
    payload = load_checkpoint(path, "backbone")
    arch = payload["arch"]
    if arch.get("name") not in BACKBONES:
        raise UserError(f"{path}: unknown backbone {arch.get('name')!r} (allowed: {', '.join(BACKBONES)})")
    try:
        backbone = build_backbone(**arch)
    except (TypeError, ValueError) as err:
        raise UserError(f"{path}: cannot rebuild the backbone from {arch} ({err})") from None
    backbone.arch = dict(arch)  # kept so that a fine-tuned copy is saved with the same schema
    return load_state_into(backbone, payload, path).eval()


def load_projector(path: str | Path, expected_in_dim: int) -> ProjectionHead:
    """SimCLR's g(.) saved by the pretrain stage, checked against F's feature size."""
    payload = load_checkpoint(path, "projector")
    arch = payload["arch"]
    if arch.get("in_dim") != expected_in_dim:
        raise UserError(f"{path}: projector expects {arch.get('in_dim')}-d features, the backbone gives {expected_in_dim}")
    try:
        projector = ProjectionHead(**arch)
    except TypeError as err:
        raise UserError(f"{path}: cannot rebuild the projector from {arch} ({err})") from None
    return load_state_into(projector, payload, path).eval()


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
    head.arch = dict(arch)
    return load_state_into(head, payload, path).eval()


def load_unet(path: str | Path, expected_clusters: int | None = None) -> nn.Module:
    from gccluster.diffusion import build_unet

    payload = load_checkpoint(path, "unet")
    arch = payload["arch"]
    if expected_clusters is not None and arch.get("n_clusters") != expected_clusters:
        raise UserError(f"{path}: DDPM is conditioned on {arch.get('n_clusters')} clusters, expected {expected_clusters}")
    try:
        unet = build_unet(**arch)
    except (TypeError, ValueError) as err:
        raise UserError(f"{path}: cannot rebuild the U-Net from {arch} ({err})") from None
    unet.arch = dict(arch)
    return load_state_into(unet, payload, path).eval()


def load_clustering_branch(backbone_path: str | Path, head_path: str | Path) -> tuple[nn.Module, ClusterHead]:
    """F and C, checked against each other."""
    backbone = load_backbone(backbone_path)
    return backbone, load_cluster_head(head_path, expected_in_dim=backbone.feature_dim)
