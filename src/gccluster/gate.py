"""CI gate on metric diffs: `dvc metrics diff --json` exits 0 even on a regression, so the
decision is ours: any ACC, NMI or ARI that drops by more than the tolerance fails."""

from __future__ import annotations

from typing import Any

GATED = ("acc", "nmi", "ari")


def metric_regressions(diff: dict[str, Any], tolerance: float) -> list[str]:
    """Lines describing every gated metric that fell by more than `tolerance`.

    `diff` is the parsed `dvc metrics diff --json`: {file: {metric: {"old", "new", "diff"}}}.
    A gated metric that vanished (new is None) counts as a regression too.
    """
    problems = []
    for file, metrics in sorted(diff.items()):
        for name, change in sorted(metrics.items()):
            if name.rsplit(".", 1)[-1] not in GATED:
                continue
            old, new = change.get("old"), change.get("new")
            if old is None:
                continue  # a new metric cannot regress
            if new is None:
                problems.append(f"{file}: {name} disappeared (was {old})")
            elif old - new > tolerance:
                problems.append(f"{file}: {name} fell from {old} to {new} (by {old - new:.4f} > {tolerance})")
    return problems
