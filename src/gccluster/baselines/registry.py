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
    best of runs), "median" (of several runs), "single" (one run, how chosen not stated)."""

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
}
assert tuple(METHODS) == METHOD_NAMES, "baselines.params.METHOD_NAMES and the registry disagree"

KIND_NOTES = {
    "best": "best epoch or best of runs",
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
