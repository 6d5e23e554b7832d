"""The CI metric gate's decision on `dvc metrics diff --json` output."""

import json
import sys

from conftest import ROOT, run
from gccluster.gate import metric_regressions

DIFF = {
    "results/metrics.json": {
        "final.acc": {"old": 0.90, "new": 0.85, "diff": -0.05},
        "final.nmi": {"old": 0.80, "new": 0.79, "diff": -0.01},
        "rounds.r1.heldout_agreement": {"old": 0.9, "new": 0.1, "diff": -0.8},
        "cluster_head.ari": {"old": 0.7, "new": 0.75, "diff": 0.05},
        "rounds.r2.acc": {"old": None, "new": 0.5, "diff": None},
    }
}


def test_only_gated_drops_beyond_tolerance_fail():
    problems = metric_regressions(DIFF, tolerance=0.02)
    assert problems == ["results/metrics.json: final.acc fell from 0.9 to 0.85 (by 0.0500 > 0.02)"]
    assert metric_regressions(DIFF, tolerance=0.06) == []


def test_vanished_metric_is_a_regression():
    diff = {"results/metrics.json": {"final.ari": {"old": 0.7, "new": None, "diff": None}}}
    assert metric_regressions(diff, 0.5) == ["results/metrics.json: final.ari disappeared (was 0.7)"]


def test_gate_command_exit_codes(tmp_path):
    bad = tmp_path / "diff.json"
    bad.write_text(json.dumps(DIFF))
    failed = run([sys.executable, "-m", "gccluster.cli", "gate", str(bad), "--params", str(ROOT / "params.yaml")],
                 tmp_path, check=False)
    assert failed.returncode == 1
    assert "regression: results/metrics.json: final.acc fell from 0.9 to 0.85" in failed.stderr
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    passed = run([sys.executable, "-m", "gccluster.cli", "gate", str(empty), "--params", str(ROOT / "params.yaml")],
                 tmp_path, check=False)
    assert passed.returncode == 0, passed.stderr
