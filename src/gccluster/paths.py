"""Every artifact path of the pipeline, in step with dvc.yaml. Paths are relative to the
project root, where DVC runs each stage."""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

PREPARED_DIR = Path("data/prepared")

RESULTS = Path("results")
PRETRAIN_DIR = RESULTS / "pretrain"
BACKBONE = PRETRAIN_DIR / "backbone.pt"
PRETRAIN_LOSS = PRETRAIN_DIR / "loss.csv"

PSEUDOLABEL_DIR = RESULTS / "pseudolabel"
CLUSTER_HEAD = PSEUDOLABEL_DIR / "cluster_head.pt"
KMEANS = PSEUDOLABEL_DIR / "kmeans.npz"
HEAD_LOSS = PSEUDOLABEL_DIR / "loss.csv"

METRICS = RESULTS / "metrics.json"

# Undeclared, git-ignored resume state of long stages; removed when a stage completes.
SCRATCH = Path(".scratch")
