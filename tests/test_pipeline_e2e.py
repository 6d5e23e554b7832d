"""The real DVC pipeline on a tiny config, in a temporary git repository."""

import json
import re

import pytest

from conftest import run, set_params

STAGES = ("data", "pretrain", "pseudolabel", "diffusion", "diffusion_samples", "round@r1", "round@r2", "evaluate",
          "figures", "baseline@dccs", "baseline@drc", "baseline@gatcluster", "baseline@precise", "report")
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
    scored = {"acc", "nmi", "ari", "balance", "silhouette", "sizes"}
    # The GCC result is the round the stopping rule keeps (gcc.select_round: heldout_stop).
    chosen = "r1" if metrics["rounds"]["r2"]["heldout_agreement"] <= metrics["rounds"]["r1"]["heldout_agreement"] else "r2"
    assert metrics["final"] == {**{k: metrics["rounds"][chosen][k] for k in scored}, "round": chosen}
    n_test = json.loads((project / "data" / "prepared" / "meta.json").read_text())["n_test"]
    for scores in [metrics[k] for k in ("kmeans_pixels", "pretext_kmeans", "cluster_head")]:
        assert set(scores) == scored
        assert 0.0 <= scores["acc"] <= 1.0 and 0.0 <= scores["balance"] <= 1.0
        assert len(scores["sizes"]) == 10 and sum(scores["sizes"]) == n_test
    for scores in metrics["rounds"].values():
        assert set(scores) == scored | {"heldout_agreement", "train_bank_fit"}
        assert 0.0 <= scores["heldout_agreement"] <= 1.0 and 0.0 <= scores["train_bank_fit"] <= 1.0
    by_round = (project / "results" / "metrics_by_round.csv").read_text().splitlines()
    assert by_round[0] == "step,round,acc,nmi,ari,balance,silhouette" and len(by_round) == 1 + 3
    n_images = 1797  # digits: every image once, train and test split rows
    for method in ("cluster_head", "gcc", "dccs", "drc", "gatcluster", "precise"):
        rows = (project / "results" / "assignments" / f"{method}.csv").read_text().splitlines()
        assert rows[0] == "file,split,cluster,confidence" and len(rows) == 1 + n_images, method
        assert rows[1].startswith("train/0,train,") and rows[-1].startswith(f"test/{n_test - 1},test,")
    for name in ("r1", "r2"):
        for output in ("backbone.pt", "cluster_head.pt", "unet.pt", "bank.npz", "samples.npz", "bank_grid.png",
                       "cluster_loss.csv", "diffusion_loss.csv"):
            assert (project / "results" / name / output).is_file()
    assert (project / "results" / "diffusion" / "samples.png").is_file()
    for figure in ("tsne.png", "generated_by_round.png", "metrics_by_round.png", "clusters.png"):
        assert (project / "results" / "figures" / figure).read_bytes()[:4] == b"\x89PNG"
    report = (project / "results" / "report.md").read_text()
    assert f"| **GCC (result)** | {metrics['final']['acc']:.4f} |" in report
    # Raw pixels of digits cluster far above chance (0.1); a broken loader would not.
    assert metrics["kmeans_pixels"]["acc"] > 0.6
    loss = (project / "results" / "pretrain" / "loss.csv").read_text().splitlines()
    assert loss[0] == "epoch,loss" and len(loss) == 1 + 2
    dccs = json.loads((project / "results" / "baselines" / "dccs" / "metrics.json").read_text())
    assert 0.0 <= dccs["acc"] <= 1.0 and dccs["training"]["encoder_steps"] == 5
    assert f"| DCCS | {dccs['acc']:.4f} | {dccs['nmi']:.4f} | {dccs['ari']:.4f} |" in report
    dccs_loss = (project / "results" / "baselines" / "dccs" / "loss.csv").read_text().splitlines()
    assert dccs_loss[0] == "epoch,loss,mi,aug,adv_encoder,critic,wasserstein,balance,encoder_steps"
    assert (project / "results" / "baselines" / "dccs" / "model.pt").is_file()
    drc = json.loads((project / "results" / "baselines" / "drc" / "metrics.json").read_text())
    assert 0.0 <= drc["acc"] <= 1.0 and drc["training"]["epochs"] == 1
    assert f"| DRC | {drc['acc']:.4f} | {drc['nmi']:.4f} | {drc['ari']:.4f} |" in report
    drc_loss = (project / "results" / "baselines" / "drc" / "loss.csv").read_text().splitlines()
    assert drc_loss[0].startswith("epoch,loss,af,ap,cr,logit_norm,balance,loss_over") and len(drc_loss) == 2
    gat = json.loads((project / "results" / "baselines" / "gatcluster" / "metrics.json").read_text())
    assert gat["training"]["iterations"] == 2 and gat["training"]["big_batch"] == 200
    assert f"| GATCluster | {gat['acc']:.4f} | {gat['nmi']:.4f} | {gat['ari']:.4f} |" in report
    gat_loss = (project / "results" / "baselines" / "gatcluster" / "loss.csv").read_text().splitlines()
    assert gat_loss[0] == "epoch,loss,t,e,e_att,r,a,balance,fallback,steps" and len(gat_loss) == 1 + 2
    pfca = json.loads((project / "results" / "baselines" / "precise" / "metrics.json").read_text())
    assert pfca["training"]["iterations"] == 4 and pfca["training"]["critic_steps"] == 4 * 5
    assert f"| Precise feature | {pfca['acc']:.4f} | {pfca['nmi']:.4f} | {pfca['ari']:.4f} |" in report
    pfca_loss = (project / "results" / "baselines" / "precise" / "loss.csv").read_text().splitlines()
    assert pfca_loss[0].startswith("epoch,loss,reality,entropy,critic,wasserstein") and len(pfca_loss) == 1 + 2
    for name in ("dccs", "drc", "gatcluster", "precise"):
        figures = sorted(p.name for p in (project / "results" / "baselines" / name / "figures").iterdir())
        assert figures == (["clusters.png", "samples.png"] if name == "precise" else ["clusters.png"]), name

    second = run(["dvc", "repro"], project)
    assert ran_stages(second.stdout) == set()
    assert_editing_any_imported_module_makes_its_stages_stale(project)
    assert_the_runs_k_reaches_every_method(project)

    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "lock"], project)
    # Which stages a key reaches: DVC's own staleness of the locked run (what `dvc exp run -S`
    # starts from; the stages downstream of these rerun because their inputs then change).
    assert stale_after(project, {"gcc": {"weights": {"ml": 0}}}) == {"round@r1", "round@r2"}
    assert stale_after(project, {"pseudolabel": {"epochs": 3}}) == {"pseudolabel"}
    # How G is sampled: the grid and the rounds' banks are drawn anew, G is not retrained.
    assert stale_after(project, {"diffusion": {"sample_steps": 3}}) == {"diffusion_samples", "round@r1", "round@r2"}
    assert stale_after(project, {"baselines": {"drc": {"lr": 0.0002}}}) == {"baseline@drc"}
    # Three real experiments, each a different path through `dvc exp run`.
    # A baseline's own key reruns that baseline and the report, nothing of GCC.
    experiment = run(["dvc", "exp", "run", "-S", "baselines.dccs.lr=0.0002"], project)
    assert ran_stages(experiment.stdout) == {"baseline@dccs", "report"}
    # Which round is the result: chosen from the rounds' scores, so no round reruns (and when
    # the rule had kept the last round already, metrics.json is unchanged: nothing after it).
    experiment = run(["dvc", "exp", "run", "-S", "gcc.select_round=last"], project)
    assert ran_stages(experiment.stdout) == {"evaluate"} | ({"figures", "report"} if chosen != "r2" else set())
    assert json.loads((project / "results" / "metrics.json").read_text())["final"]["round"] == "r2"
    # A new round reruns no earlier round (each round reads its own entry of gcc.rounds).
    experiment = run(["dvc", "exp", "run", "-S", "+gcc.rounds.r3={init: r2}", "-S", "gcc.final_round=r3"], project)
    assert ran_stages(experiment.stdout) == {"round@r3", "evaluate", "figures", "report"}
    assert not (project / ".scratch").exists()  # resume state removed after completion


def stale_stages(project) -> set[str]:
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        return {address.rsplit(":", 1)[-1] for address in repo.status()}


def stale_after(project, overrides: dict) -> set[str]:
    """The stages `dvc status` calls changed with `overrides` written into params.yaml (then restored)."""
    params = project / "params.yaml"
    original = params.read_text()
    set_params(project, overrides)
    try:
        return stale_stages(project)
    finally:
        params.write_text(original)


def assert_the_runs_k_reaches_every_method(project):
    """pseudolabel.n_clusters is every seed method's K too (baselines.<name>.n_clusters null):
    changing it makes GCC's stages and every baseline stale."""
    stale = stale_after(project, {"pseudolabel": {"n_clusters": 9}})
    assert {"pseudolabel", "baseline@dccs", "baseline@drc", "baseline@gatcluster", "baseline@precise"} <= stale


def assert_editing_any_imported_module_makes_its_stages_stale(project):
    """Every source file a stage imports (directly or not) is covered by one of that stage's
    deps as DVC resolves them (foreach items expanded); and for four files, a shared module,
    one method's own file, one method's params module (its stage and the report only) and a
    stage script, appending a comment makes exactly the stages whose code deps (the rule of
    gccluster.stagedeps) hold it stale in `dvc status`. (tests/test_stage_deps.py checks dvc.yaml's lists
    against the imports without DVC.)"""
    from dvc.repo import Repo

    from gccluster.stagedeps import METHOD_FOLDER, expected_code_deps

    closures = {}
    for stage in STAGES:
        name, _, item = stage.partition("@")
        closures[stage] = expected_code_deps(f"stages/{name}.py", project)
        if METHOD_FOLDER in closures[stage]:  # a method's own folder: every file in it
            folder = METHOD_FOLDER.replace("${item}", item)
            closures[stage] = (closures[stage] - {METHOD_FOLDER}) | {
                p.relative_to(project).as_posix() for p in (project / folder).rglob("*.py")}
    with Repo(str(project)) as repo:
        resolved = {stage.name: [dep.def_path.rstrip("/") for dep in stage.deps] for stage in repo.index.stages}
    for stage, files in closures.items():
        uncovered = {f for f in files if not any(f == d or f.startswith(d + "/") for d in resolved[stage])}
        assert not uncovered, f"{stage} imports {sorted(uncovered)} but DVC does not see them as its deps"
    for source in ("src/gccluster/io.py", "src/gccluster/baselines/dccs/method.py",
                   "src/gccluster/baselines/drc/params.py", "stages/round.py"):
        path = project / source
        original = path.read_text()
        path.write_text(original + "# edited\n")
        try:
            stale = stale_stages(project)
        finally:
            path.write_text(original)
        assert stale == {stage for stage, files in closures.items() if source in files}, source
