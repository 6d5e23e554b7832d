"""The real DVC pipeline on a tiny config, in a temporary git repository."""

import json
import re

import pytest

from conftest import run

STAGES = ("data", "pretrain", "pseudolabel", "evaluate")


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.mark.e2e
def test_repro_then_noop_then_param_experiment(project):
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "tiny"], project)

    first = run(["dvc", "repro"], project)
    assert ran_stages(first.stdout) == set(STAGES)
    metrics = json.loads((project / "results" / "metrics.json").read_text())
    assert set(metrics) == {"kmeans_pixels", "pretext_kmeans", "cluster_head"}
    for scores in metrics.values():
        assert set(scores) == {"acc", "nmi", "ari"}
        assert 0.0 <= scores["acc"] <= 1.0
    # Raw pixels of digits cluster far above chance (0.1); a broken loader would not.
    assert metrics["kmeans_pixels"]["acc"] > 0.6
    loss = (project / "results" / "pretrain" / "loss.csv").read_text().splitlines()
    assert loss[0] == "epoch,loss" and len(loss) == 1 + 2

    second = run(["dvc", "repro"], project)
    assert ran_stages(second.stdout) == set()

    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "lock"], project)
    experiment = run(["dvc", "exp", "run", "-S", "pseudolabel.epochs=3"], project)
    assert ran_stages(experiment.stdout) == {"pseudolabel", "evaluate"}
    assert not (project / ".scratch").exists()  # resume state removed after completion
