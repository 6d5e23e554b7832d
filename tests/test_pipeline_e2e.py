"""The real DVC pipeline on a tiny config, in a temporary git repository."""

import json
import re

import pytest

from conftest import run

STAGES = ("data", "pretrain", "pseudolabel", "diffusion", "round@r1", "round@r2", "evaluate", "figures", "report")
AFTER_ROUNDS = {"round@r1", "round@r2", "evaluate", "figures", "report"}


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
    assert set(metrics) == {"kmeans_pixels", "pretext_kmeans", "cluster_head", "rounds", "final"}
    assert list(metrics["rounds"]) == ["r1", "r2"]
    assert metrics["final"] == {k: metrics["rounds"]["r2"][k] for k in ("acc", "nmi", "ari")}
    for scores in [metrics[k] for k in ("kmeans_pixels", "pretext_kmeans", "cluster_head")]:
        assert set(scores) == {"acc", "nmi", "ari"}
        assert 0.0 <= scores["acc"] <= 1.0
    for scores in metrics["rounds"].values():
        assert set(scores) == {"acc", "nmi", "ari", "bank_agreement"}
        assert 0.0 <= scores["bank_agreement"] <= 1.0
    by_round = (project / "results" / "metrics_by_round.csv").read_text().splitlines()
    assert by_round[0] == "step,round,acc,nmi,ari" and len(by_round) == 1 + 3
    for name in ("r1", "r2"):
        for output in ("backbone.pt", "cluster_head.pt", "unet.pt", "bank.npz", "bank_grid.png",
                       "cluster_loss.csv", "diffusion_loss.csv"):
            assert (project / "results" / name / output).is_file()
    assert (project / "results" / "diffusion" / "samples.png").is_file()
    for figure in ("tsne.png", "generated_by_round.png", "metrics_by_round.png"):
        assert (project / "results" / "figures" / figure).read_bytes()[:4] == b"\x89PNG"
    report = (project / "results" / "report.md").read_text()
    assert f"| **GCC, this run (final round)** | {metrics['final']['acc']:.4f} |" in report
    # Raw pixels of digits cluster far above chance (0.1); a broken loader would not.
    assert metrics["kmeans_pixels"]["acc"] > 0.6
    loss = (project / "results" / "pretrain" / "loss.csv").read_text().splitlines()
    assert loss[0] == "epoch,loss" and len(loss) == 1 + 2

    second = run(["dvc", "repro"], project)
    assert ran_stages(second.stdout) == set()

    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "lock"], project)
    experiment = run(["dvc", "exp", "run", "-S", "gcc.weights.ml=0"], project)
    assert ran_stages(experiment.stdout) == AFTER_ROUNDS
    experiment = run(["dvc", "exp", "run", "-S", "pseudolabel.epochs=3"], project)
    assert ran_stages(experiment.stdout) == {"pseudolabel", "diffusion"} | AFTER_ROUNDS
    assert not (project / ".scratch").exists()  # resume state removed after completion
