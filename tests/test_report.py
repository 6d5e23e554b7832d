"""The report: published numbers beside the run, and the ablation table from experiments."""

from gccluster.report import ablation_rows, render_report


def run_entry(rev, weights, acc, other=None):
    params = {"gcc": {"weights": weights}, "pretrain": {"epochs": other or 100}}
    metrics = {"final": {"acc": acc, "nmi": acc - 0.1, "ari": acc - 0.2}}
    return {"rev": rev, "name": None, "data": {"rev": rev, "params": {"params.yaml": {"data": params}},
            "metrics": {"results/metrics.json": {"data": metrics}}}, "error": None, "experiments": None}


def exp_show(*experiments):
    """The shape of `dvc exp show --json` (DVC 3): workspace, then the commit with its experiments."""
    full = {"d": 1, "cwm": 1, "ml": 1}
    commit = run_entry("abc123", full, 0.95)
    commit["name"] = "main"
    commit["experiments"] = [{"revs": [exp], "executor": None, "name": exp["rev"]} for exp in experiments]
    return [run_entry("workspace", full, 0.95), commit]


def gcc_metrics(pixels_acc: float) -> dict:
    """results/metrics.json of a one-round run."""
    return {
        "kmeans_pixels": {"acc": pixels_acc, "nmi": 0.1, "ari": 0.05},
        "pretext_kmeans": {"acc": 0.6, "nmi": 0.5, "ari": 0.4},
        "cluster_head": {"acc": 0.7, "nmi": 0.6, "ari": 0.5},
        "rounds": {"r1": {"acc": 0.8, "nmi": 0.7, "ari": 0.6, "heldout_agreement": 0.9, "train_bank_fit": 0.95}},
        "final": {"acc": 0.8, "nmi": 0.7, "ari": 0.6},
    }


def test_ablation_rows_match_weights_and_skip_other_changes():
    shown = exp_show(
        run_entry("e1", {"d": 0, "cwm": 1, "ml": 1}, 0.80),
        run_entry("e2", {"d": 1, "cwm": 0, "ml": 1}, 0.92),
        run_entry("e3", {"d": 1, "cwm": 1, "ml": 0}, 0.93),
        run_entry("e4", {"d": 1, "cwm": 1, "ml": 0}, 0.50, other=5),  # also fewer epochs: not an ablation
    )
    rows = ablation_rows(shown)
    assert {k: v["acc"] for k, v in rows.items()} == {
        "GCC (full)": 0.95, "GCC-d (no L_d)": 0.80, "GCC-cwm (no L_cwm)": 0.92, "GCC-ml (no L_ml)": 0.93,
    }
    assert ablation_rows([]) == {}


def test_render_report_tables():
    metrics = gcc_metrics(pixels_acc=0.2)
    meta = {"dataset": "cifar10", "n_train": 50000, "n_test": 10000, "image_size": 32, "protocol": "train"}
    params = {"pretrain": {"backbone": "resnet18"}}
    text = render_report(metrics, meta, params, None)
    assert "| **GCC (result)** | 0.8000 | 0.7000 | 0.6000 |" in text
    assert "| GCC (paper, Table 1) | 0.9040 | 0.7920 | 0.7990 |" in text
    assert "| r1 | 0.8000 | 0.7000 | 0.6000 | 0.9000 | 0.9500 |" in text
    assert "No ablation experiments found" in text
    with_ablation = render_report(metrics, meta, params, exp_show(run_entry("e1", {"d": 0, "cwm": 1, "ml": 1}, 0.7)))
    assert "| GCC-d (no L_d) | 0.7000 | 0.6000 | 0.5000 |" in with_ablation
    assert "Not found among the experiments: GCC-cwm (no L_cwm), GCC-ml (no L_ml)." in with_ablation


BASELINE_SCORES = {"acc": 0.91, "nmi": 0.85, "ari": 0.8, "balance": 0.99, "protocol": "train",
                   "training": {"encoder_steps": 1500, "wall_seconds": 160.0, "stop_reason": "flat"}}


def test_leaderboard_puts_baselines_beside_gcc_and_the_papers_numbers():
    metrics = gcc_metrics(pixels_acc=0.48)
    meta = {"dataset": "fashion_mnist", "n_train": 60000, "n_test": 10000, "image_size": 28, "protocol": "train"}
    drc = {**BASELINE_SCORES, "acc": 0.5, "training": {"epochs": 30, "wall_seconds": 90.0}}
    gat = {**BASELINE_SCORES, "acc": 0.6, "training": {"iterations": 40, "wall_seconds": 30.0}}
    pfca = {**BASELINE_SCORES, "acc": 0.3, "training": {"iterations": 9000, "paper_fraction": 0.01,
                                                        "wall_seconds": 2400.0}}
    text = render_report(metrics, meta, {"pretrain": {"backbone": "small_cnn"}}, None,
                         {"dccs": BASELINE_SCORES, "drc": drc, "gatcluster": gat, "precise": pfca})
    assert "| DCCS | 0.9100 | 0.8500 | 0.8000 | 0.9900 | – | 1500 encoder steps; 160 s; stopped: flat |" in text
    assert "| DRC | 0.5000 | 0.8500 | 0.8000 | 0.9900 | – | 30 epochs; 90 s |" in text
    assert "| GATCluster | 0.6000 | 0.8500 | 0.8000 | 0.9900 | – | 40 iterations; 30 s |" in text
    assert "| Precise feature | 0.3000 | 0.8500 | 0.8000 | 0.9900 | – | 9000 iterations; 1.00% of the paper's budget; 2400 s |" in text
    assert ("| Precise feature (paper) | 0.7210 | 0.7190 | 0.5550 | Table II, median of 10, `train` (same protocol as "
            "this run); median of runs |") in text
    assert ("| DCCS (paper) | 0.7560 | 0.7040 | 0.6230 | Table 2, `train+test` (other protocol than this run); "
            "best epoch or best of runs |") in text
    assert text.index("## Leaderboard") < text.index("## Per-round progression")


def metrics_run(rev, seed, final_acc, dccs_acc, lr=0.0001):
    gcc = {name: {"acc": final_acc, "nmi": 0.5, "ari": 0.4}
           for name in ("kmeans_pixels", "pretext_kmeans", "cluster_head", "final")}
    files = {"results/metrics.json": {"data": gcc},
             "results/baselines/dccs/metrics.json": {"data": {**BASELINE_SCORES, "acc": dccs_acc}}}
    params = {"base": {"seed": seed}, "baselines": {"dccs": {"lr": lr}}}
    return {"rev": rev, "name": None, "error": None, "experiments": None,
            "data": {"rev": rev, "params": {"params.yaml": {"data": params}}, "metrics": files}}


def test_leaderboard_over_seeds_gives_min_median_max_per_method():
    from gccluster.report import render_leaderboard, seed_groups

    commit = metrics_run("abc", 0, 0.90, 0.80)
    commit["experiments"] = [{"revs": [run], "name": run["rev"]} for run in (
        metrics_run("e1", 1, 0.94, 0.70), metrics_run("e2", 2, 0.92, 0.75), metrics_run("e3", 0, 0.5, 0.5, lr=1.0))]
    shown = [metrics_run("workspace", 0, 0.90, 0.80), commit]
    groups = seed_groups(shown)
    assert [sorted(seeds) for _, seeds in groups] == [[0, 1, 2], [0]]  # the workspace repeats seed 0
    text = render_leaderboard(shown)
    assert "| GCC (result) | 3 | 0.9000 / 0.9200 / 0.9400 |" in text
    assert "| DCCS | 3 | 0.7000 / 0.7500 / 0.8000 |" in text
    assert "## baselines.dccs.lr=1.0" in text
    assert "No run with metrics" in render_leaderboard([])


def test_leaderboard_takes_a_seed_from_its_experiment_before_the_commits_files():
    """A commit whose metrics files predate its params (a preset written and committed without
    `dvc repro`) must not stand in for the seed its experiment reproduced."""
    from gccluster.report import render_leaderboard, seed_groups

    commit = metrics_run("abc", 0, 0.10, 0.10)  # stale: another dataset's results
    commit["experiments"] = [{"revs": [run], "name": run["rev"]} for run in (
        metrics_run("e0", 0, 0.90, 0.80), metrics_run("e1", 1, 0.94, 0.70), metrics_run("e2", 2, 0.92, 0.75),
        metrics_run("e0-again", 0, 0.20, 0.20))]
    shown = [metrics_run("workspace", 2, 0.92, 0.75), commit]
    (params, seeds), = seed_groups(shown)
    assert list(seeds) == [2, 0, 1]  # first seen first
    assert seeds[0]["GCC (result)"]["acc"] == 0.90  # the first experiment of seed 0, not the commit
    assert "| DCCS | 3 | 0.7000 / 0.7500 / 0.8000 |" in render_leaderboard(shown)


def test_leaderboard_titles_groups_by_their_difference_from_the_commit_even_without_its_metrics():
    from gccluster.report import render_leaderboard

    commit = metrics_run("abc", 0, 0.90, 0.80)
    commit["data"]["metrics"] = {}  # e.g. the commit was never reproduced: only its experiments ran
    commit["experiments"] = [{"revs": [run], "name": run["rev"]} for run in (
        metrics_run("e1", 1, 0.94, 0.70, lr=1.0), metrics_run("e2", 1, 0.92, 0.75))]
    text = render_leaderboard([commit])
    assert text.index("## baselines.dccs.lr=1.0") < text.index("## committed params")
