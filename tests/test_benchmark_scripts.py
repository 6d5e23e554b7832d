"""The baselines' step-time benchmarks call their method's private training steps, whose
signatures change with the method (the data-parallel refactor of issue 18 broke three of the
four without any test noticing). One timed step of each, fp32 and bf16, at a small size: the
scripts run and write positive times. No number is checked against a speed goal."""

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from conftest import ROOT

# script, its arguments for one cheap step, the keys that must hold positive times
STEP_TIME_SCRIPTS = [
    ("dccs_step_time.py", ["--steps", "1", "--warmup", "0"], ["encoder_step_ms_median", "critic_step_ms_median"]),
    ("drc_step_time.py", ["--size", "16", "--steps", "1", "--warmup", "0"], ["step_ms_median"]),
    ("gatcluster_step_time.py", ["--size", "16", "--steps", "1", "--warmup", "0"],
     ["step1_ms", "step2_ms", "iteration_s"]),
    ("precise_step_time.py", ["--size", "16", "--steps", "1", "--warmup", "0"],
     ["critic_ms", "classifier_ms", "generator_ms"]),
]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), ROOT / "benchmarks" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script, args, keys", STEP_TIME_SCRIPTS, ids=[s for s, _, _ in STEP_TIME_SCRIPTS])
def test_step_time_benchmark_runs_the_methods_own_steps(script, args, keys, tmp_path):
    out = tmp_path / "times.json"
    result = CliRunner().invoke(load_script(script).app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    written = json.loads(out.read_text())
    for precision in ("fp32", "bf16"):
        for key in keys:
            assert written[precision][key] > 0, (precision, key)


def test_gpu_throughput_quick_times_every_kind_on_the_cpu(tmp_path, monkeypatch):
    """`--quick` on the CPU (shrunken batches) runs every step kind of the Fashion-MNIST preset,
    GCC's and the four seed methods', through the current training functions; it projects
    nothing from those numbers."""
    out = tmp_path / "smoke.json"
    monkeypatch.setattr("sys.argv", ["gpu_throughput.py", "--out", str(out), "--quick", "--presets", "fashion_mnist",
                                     "--precisions", "fp32", "--workers", "0"])
    load_script("gpu_throughput.py").main()
    written = json.loads(out.read_text())
    rows = written["rows"]
    expected = {"simclr", "reference_simclr", "ddpm", "ddim_bank", "gcc_step", "cluster_head",
                "dccs", "drc", "gatcluster", "precise"}
    assert {name.split("/")[0] for name in rows} == expected
    for name, row in rows.items():
        assert "error" not in row, (name, row)
    assert rows["simclr/fashion_mnist/fp32"]["ms_per_step"] > 0
    assert rows["precise/fashion_mnist/fp32"]["critic_ms"] > 0
    assert rows["gatcluster/fashion_mnist/fp32"]["big_batch"] == 64  # the quick batch, not the preset's 4,000
    assert written["projections"] == {}


def test_baseline_projection_follows_the_preset_budgets():
    """The seed methods' projected training time is their budget times their measured steps."""
    gpu = load_script("gpu_throughput.py")
    rows = {"dccs/fashion_mnist/bf16": {"encoder_step_ms_median": 2.0, "critic_step_ms_median": 1.0},
            "drc/fashion_mnist/bf16": {"step_ms_median": 10.0},
            "gatcluster/fashion_mnist/bf16": {"iteration_s": 3.0},
            "precise/fashion_mnist/bf16": {"critic_ms": 1.0, "classifier_ms": 0.5, "generator_ms": 2.0}}
    got = gpu.project_baselines("fashion_mnist", rows, "bf16")
    # preset: DCCS 20,000 steps, 4 critic steps each; DRC 30 epochs, two heads, 60,000 // 256
    # batches; GATCluster 90 iterations; precise 10,000 iterations of 5 critic + 4 classifier + 1
    assert got["dccs_s"] == pytest.approx(20_000 * (4 * 1.0 + 2.0) / 1000)
    assert got["drc_s"] == pytest.approx(30 * 2 * 234 * 10.0 / 1000)
    assert got["gatcluster_s"] == pytest.approx(90 * 3.0)
    assert got["precise_s"] == pytest.approx(10_000 * (5 * 1.0 + 4 * 0.5 + 2.0) / 1000)
    assert gpu.project_baselines("fashion_mnist", {}, "bf16") == {}


def test_drc_budget_rule_finds_the_first_window_whose_fall_is_below_the_tolerance():
    """DECLARED.md's plateau rule on a hand-worked curve: the loss falls 0.002 per epoch to
    epoch 75 (0.05 per 25-epoch window), then 0.0002 per epoch. Window means are the loss at the
    window's centre: m(75) = 0.874, m(100) = 0.8474 (fall 0.0266), m(125) = 0.8424 (fall 0.005)."""
    import pandas as pd

    rule = load_script("digits_drc_budget/apply_rule.py")
    epochs = pd.RangeIndex(1, 201, name="epoch")
    loss = pd.Series([1 - 0.002 * e if e <= 75 else 0.85 - 0.0002 * (e - 75) for e in epochs], index=epochs)
    budget, rows = rule.plateau_budget(loss)
    assert budget == 125
    assert [row["epoch"] for row in rows] == [50, 75, 100, 125, 150, 175, 200]
    assert rows[2]["fall_over_window"] == pytest.approx(0.0266, abs=1e-4)
    steep = pd.Series([1 - 0.002 * e for e in epochs], index=epochs)
    assert rule.plateau_budget(steep)[0] == 200  # never flat: the whole run


def test_drc_seed_stability_is_one_for_relabelled_copies_and_near_zero_for_unrelated_partitions():
    """DECLARED.md's criterion (digits_drc_overcluster): the mean ARI over seed pairs does not
    care how clusters are numbered, and three unrelated partitions score near 0."""
    import numpy as np

    stability = load_script("digits_drc_overcluster/stability.py").seed_stability
    base = np.repeat(np.arange(10), 30)
    relabelled = (base + 3) % 10
    assert stability([base, relabelled, base]) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    assert abs(stability([rng.integers(0, 10, 3000) for _ in range(3)])) < 0.01
    # one seed differs in 30 of 300 images: pairs (a, b) = 1, (a, c) = (b, c) = ARI(base, moved)
    moved = base.copy()
    moved[:30] = 9
    from sklearn.metrics import adjusted_rand_score

    assert stability([base, base, moved]) == pytest.approx((1 + 2 * adjusted_rand_score(base, moved)) / 3)


def test_ld_bandwidth_probe_null_keeps_cluster_sizes_and_tells_a_shift_from_none():
    """The probe's null reshuffles real/generated membership within each cluster (sizes kept);
    L_d on two samples of one distribution sits at its null, on a shifted one far above it."""
    import torch

    probe = load_script("ld_bandwidth_probe.py")
    gen = torch.Generator().manual_seed(0)
    real, real_k = torch.randn(300, 4, generator=gen), torch.arange(300) % 3
    fake, fake_k = torch.randn(200, 4, generator=gen), torch.arange(200) % 3
    r, rk, f, fk = probe.shuffled_sides(real, real_k, fake, fake_k, gen)
    assert len(r) == 300 and len(f) == 200
    assert torch.equal(torch.bincount(rk), torch.bincount(real_k))
    assert torch.equal(torch.bincount(fk), torch.bincount(fake_k))
    assert sorted(torch.cat([r, f]).sum(dim=1).tolist()) == pytest.approx(sorted(torch.cat([real, fake]).sum(dim=1).tolist()))
    same = probe.probe_bandwidth(real, real_k, fake, fake_k, "median", 40, 60, gen)
    shifted = probe.probe_bandwidth(real, real_k, fake + 1.5, fake_k, "median", 40, 60, gen)
    assert 0.2 < same["batches_observed_above_null"] < 0.8
    assert shifted["batches_observed_above_null"] == 1.0 and shifted["separation"] > 2
    # Paired as training pairs: no generated image twice in a batch while its cluster's pool
    # allows (pools of 40, about 16 draws each), clusters without generated images left out.
    generated_clusters, clusters = torch.arange(120) % 3, torch.arange(400) % 4
    pairing = probe.BankPairing(generated_clusters, 4)
    for _ in range(20):
        rows, picks = probe.training_like_batch(clusters, pairing, 64, gen)
        assert not bool((clusters[rows] == 3).any())
        assert len(torch.unique(picks)) == len(picks)
        assert torch.equal(torch.sort(clusters[rows]).values, torch.sort(generated_clusters[picks]).values)
    # one pair per cluster, at distances 1 and 3: torch's median of an even count is the lower middle value
    points = torch.tensor([[0.0], [1.0], [10.0], [13.0]])
    assert probe.within_cluster_median(points, torch.tensor([0, 0, 1, 1])) == 1.0


def test_generator_drift_probe_scores_agreement_and_a_cosine_silhouette():
    """Agreement is the share of predictions equal to the conditioning cluster; two tight
    clusters on orthogonal directions have a cosine silhouette near 1."""
    import numpy as np

    probe = load_script("generator_drift_probe.py")
    rng = np.random.default_rng(0)
    features = np.concatenate([[1.0, 0.0] + 0.01 * rng.standard_normal((50, 2)),
                               [0.0, 1.0] + 0.01 * rng.standard_normal((50, 2))])
    conditioned = np.repeat([0, 1], 50)
    predicted = conditioned.copy()
    predicted[:10] = 1  # 10 of 100 assigned elsewhere
    scores = probe.draw_scores(features, predicted, conditioned, max_silhouette=1000, seed=0)
    assert scores["agreement"] == pytest.approx(0.9)
    assert scores["silhouette_cosine"] > 0.95
    assert probe.draw_scores(features, predicted, rng.integers(0, 2, 100), 1000, 0)["silhouette_cosine"] < 0.1


def test_score_rounds_decides_the_declared_rule_only_from_finished_rounds():
    rule_so_far = load_script("score_rounds.py").rule_so_far
    chain = ["s1r1", "s1r2", "s1r3"]
    # rising so far: heldout_stop cannot decide before s1r3 has run
    assert rule_so_far(chain, ["s1r1", "s1r2"], {"s1r1": 0.86, "s1r2": 0.87}, "heldout_stop") == {
        "decided": False, "next_round": "s1r3"}
    # a fall (or a tie) decides it: the round before it, whatever later rounds would score
    assert rule_so_far(chain, ["s1r1", "s1r2"], {"s1r1": 0.875, "s1r2": 0.86}, "heldout_stop") == {
        "decided": True, "result": "s1r1"}
    assert rule_so_far(chain, ["s1r1", "s1r2"], {"s1r1": 0.86, "s1r2": 0.86}, "heldout_stop")["result"] == "s1r1"
    # one round is never enough for either rule; the complete chain always is
    assert rule_so_far(chain, ["s1r1"], {"s1r1": 0.9}, "heldout_stop")["next_round"] == "s1r2"
    assert rule_so_far(chain, ["s1r1", "s1r2"], {"s1r1": 0.9, "s1r2": 0.8}, "last")["decided"] is False
    rising = {"s1r1": 0.8, "s1r2": 0.85, "s1r3": 0.9}
    assert rule_so_far(chain, chain, rising, "heldout_stop") == {"decided": True, "result": "s1r3"}
    assert rule_so_far(chain, chain, {**rising, "s1r3": 0.1}, "last") == {"decided": True, "result": "s1r3"}
