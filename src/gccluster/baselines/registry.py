"""Registry of the seed methods: name -> where its code is, what its paper printed.

A method's code is imported by name (`method_module`), so that a pipeline stage loads only
the method it runs: dvc.yaml gives `baseline@<name>` the folder
`src/gccluster/baselines/<name>` as a dependency, and an edit of one method reruns that
method alone.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from gccluster.baselines.params import METHOD_NAMES
from gccluster.errors import UserError


@dataclass(frozen=True)
class PublishedScore:
    """A number a paper printed: `kind` says what it is (DESIGN.md §8): "best" (best epoch or
    best of runs), "mean" or "median" (of several runs), "single" (one run, how chosen not
    stated)."""

    dataset: str
    protocol: str  # "train" (fit on train, score on test) or "train+test"
    acc: float
    nmi: float
    ari: float
    kind: str
    source: str


@dataclass(frozen=True)
class MethodInfo:
    name: str
    title: str
    paper: str
    published: tuple[PublishedScore, ...]


METHODS: dict[str, MethodInfo] = {
    "dccs": MethodInfo(
        name="dccs",
        title="DCCS",
        paper="Zhao et al., Deep Image Clustering with Category-Style Representation, ECCV 2020",
        published=(
            # Table 2 (Table 4 gives the same numbers to 4 digits): train+test merged, one number
            # per dataset; the code logs the running maximum over epochs of each metric, and the
            # paper does not say which epoch it reports (dccs-precise.md A.7): a best-epoch number.
            PublishedScore("mnist", "train+test", 0.989, 0.970, 0.976, "best", "Table 2"),
            PublishedScore("fashion_mnist", "train+test", 0.756, 0.704, 0.623, "best", "Table 2"),
            PublishedScore("cifar10", "train+test", 0.656, 0.569, 0.469, "best", "Table 3"),
            PublishedScore("stl10", "train+test", 0.536, 0.490, 0.362, "best", "Table 3"),
        ),
    ),
    "drc": MethodInfo(
        name="drc",
        title="DRC",
        paper="Zhong et al., Deep Robust Clustering by Contrastive Learning, arXiv 2008.03030",
        published=(
            # Table 1: mean and best of 5 trials; train+test merged (the DAC/PICA convention;
            # STL-10: the 13K labelled images scored, the 100K unlabelled seen by the
            # over-clustering head only). Which epoch a trial reports is not stated.
            PublishedScore("cifar10", "train+test", 0.716, 0.612, 0.534, "mean", "Table 1, mean of 5"),
            PublishedScore("cifar10", "train+test", 0.727, 0.621, 0.547, "best", "Table 1, best of 5"),
            PublishedScore("cifar100_20", "train+test", 0.355, 0.343, 0.196, "mean", "Table 1, mean of 5"),
            PublishedScore("cifar100_20", "train+test", 0.367, 0.356, 0.208, "best", "Table 1, best of 5"),
            PublishedScore("stl10", "train+test", 0.744, 0.639, 0.564, "mean", "Table 1, mean of 5"),
            PublishedScore("stl10", "train+test", 0.747, 0.644, 0.569, "best", "Table 1, best of 5"),
        ),
    ),
    "gatcluster": MethodInfo(
        name="gatcluster",
        title="GATCluster",
        paper="Niu et al., GATCluster: Self-Supervised Gaussian-Attention Network for Image Clustering, ECCV 2020",
        published=(
            # Table 1, train+test merged (STL-10: the 13K labelled images; CIFAR: 60K). The STL-10
            # entry equals the best of the 10 runs of Table 2 (whose mean is printed beside it),
            # and the code keeps the label-selected best checkpoint; for CIFAR the paper says
            # nothing of runs, so those numbers are taken as the same kind.
            PublishedScore("cifar10", "train+test", 0.610, 0.475, 0.402, "best", "Table 1"),
            PublishedScore("cifar100_20", "train+test", 0.281, 0.215, 0.116, "best", "Table 1"),
            PublishedScore("stl10", "train+test", 0.583, 0.446, 0.363, "best", "Table 1 = Table 2, best of 10"),
            PublishedScore("stl10", "train+test", 0.537, 0.415, 0.315, "mean", "Table 2, mean of 10"),
        ),
    ),
    "precise": MethodInfo(
        name="precise",
        title="Precise feature",
        paper="Gan et al., Learning the Precise Feature for Cluster Assignment, IEEE T-Cybernetics 2021",
        published=(
            # Tables I-II: ten runs of one configuration, fit on the train split and scored on
            # the test split; the median and the maximum (best of 10) of each metric, taken
            # per metric. Tables VI's CIFAR-10 and ImageNet-10 rows are left out: their high
            # NMI with near-zero ARI looks like the code's per-batch purity scoring
            # (dccs-precise.md B.3), which is not comparable with full-set Hungarian ACC.
            PublishedScore("mnist", "train", 0.958, 0.944, 0.912, "median", "Table I, median of 10"),
            PublishedScore("mnist", "train", 0.984, 0.978, 0.951, "best", "Table I, max of 10"),
            PublishedScore("fashion_mnist", "train", 0.721, 0.719, 0.555, "median", "Table II, median of 10"),
            PublishedScore("fashion_mnist", "train", 0.754, 0.749, 0.589, "best", "Table II, max of 10"),
        ),
    ),
}
assert tuple(METHODS) == METHOD_NAMES, "baselines.params.METHOD_NAMES and the registry disagree"

KIND_NOTES = {
    "best": "best epoch or best of runs",
    "mean": "mean of runs",
    "median": "median of runs",
    "single": "one run",
}


def method_info(name: str) -> MethodInfo:
    if name not in METHODS:
        raise UserError(f"unknown baseline {name!r} (allowed: {', '.join(METHODS)})")
    return METHODS[name]


def method_module(name: str) -> ModuleType:
    """`gccluster.baselines.<name>.method`: its `train(request)` and `load(path)`."""
    method_info(name)
    return importlib.import_module(f"gccluster.baselines.{name}.method")
