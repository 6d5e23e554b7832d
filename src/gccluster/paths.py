"""Every artifact path of the pipeline, in step with dvc.yaml. Paths are relative to the
project root, where DVC runs each stage."""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

PREPARED_DIR = Path("data/prepared")

RESULTS = Path("results")
PRETRAIN_DIR = RESULTS / "pretrain"
BACKBONE = PRETRAIN_DIR / "backbone.pt"
PROJECTOR = PRETRAIN_DIR / "projector.pt"  # SimCLR's g(.), for K-means in the projection space
PRETRAIN_LOSS = PRETRAIN_DIR / "loss.csv"

PSEUDOLABEL_DIR = RESULTS / "pseudolabel"
CLUSTER_HEAD = PSEUDOLABEL_DIR / "cluster_head.pt"
KMEANS = PSEUDOLABEL_DIR / "kmeans.npz"
HEAD_LOSS = PSEUDOLABEL_DIR / "loss.csv"

METRICS = RESULTS / "metrics.json"

# Undeclared, git-ignored resume state of long stages; removed when a stage completes.
SCRATCH = Path(".scratch")

DIFFUSION_DIR = RESULTS / "diffusion"
UNET = DIFFUSION_DIR / "unet.pt"
DIFFUSION_LOSS = DIFFUSION_DIR / "loss.csv"
DIFFUSION_SAMPLES = DIFFUSION_DIR / "samples.png"

METRICS_BY_ROUND = RESULTS / "metrics_by_round.csv"


class RoundPaths:
    """Files of one GCC round, in results/<name>/ (dvc.yaml: the `round` foreach)."""

    def __init__(self, name: str):
        self.name = name
        self.dir = RESULTS / name
        self.backbone = self.dir / "backbone.pt"
        self.cluster_head = self.dir / "cluster_head.pt"
        self.unet = self.dir / "unet.pt"
        self.bank = self.dir / "bank.npz"  # drawn from the input G; F and C train on it
        self.bank_grid = self.dir / "bank_grid.png"
        self.samples = self.dir / "samples.npz"  # a fresh draw from the output G, never trained on
        self.cluster_loss = self.dir / "cluster_loss.csv"
        self.diffusion_loss = self.dir / "diffusion_loss.csv"


def round_inputs(init: str) -> tuple[Path, Path, Path]:
    """(F, C, G) checkpoints a round starts from: Stage I's for init=pseudolabel, else the
    predecessor round's."""
    if init == "pseudolabel":
        return BACKBONE, CLUSTER_HEAD, UNET
    previous = RoundPaths(init)
    return previous.backbone, previous.cluster_head, previous.unet

# One CSV per method of the run: each image's cluster and confidence (gccluster.assignments).
ASSIGNMENTS_DIR = RESULTS / "assignments"


def assignments_file(method: str) -> Path:
    return ASSIGNMENTS_DIR / f"{method}.csv"


GCC_ASSIGNMENT_METHODS = ("cluster_head", "gcc")  # Stage I's head, and the final round

BASELINES_DIR = RESULTS / "baselines"


class BaselinePaths:
    """Files of one seed method, in results/baselines/<name>/ (dvc.yaml: the `baseline` foreach)."""

    def __init__(self, name: str):
        self.name = name
        self.dir = BASELINES_DIR / name
        self.model = self.dir / "model.pt"
        self.loss = self.dir / "loss.csv"
        self.metrics = self.dir / "metrics.json"
        self.figures = self.dir / "figures"  # clusters.png and the method's own grids
        self.assignments = assignments_file(name)


FIGURES_DIR = RESULTS / "figures"
TSNE_FIGURE = FIGURES_DIR / "tsne.png"
GENERATED_FIGURE = FIGURES_DIR / "generated_by_round.png"
METRICS_FIGURE = FIGURES_DIR / "metrics_by_round.png"
CLUSTERS_FIGURE = FIGURES_DIR / "clusters.png"  # real test images by the final round's cluster
REPORT = RESULTS / "report.md"
