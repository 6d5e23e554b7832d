"""DVC stage `evaluate`: test-split ACC/NMI/ARI and label-free diagnostics of every model ->
results/metrics.json; each image's cluster under Stage I's head and the GCC result (the round
`gcc.select_round` picks) -> results/assignments/{cluster_head,gcc}.csv."""

from pathlib import Path

import typer

from gccluster import paths
from gccluster.config import load_params, round_chain
from gccluster.data.prepare import load_prepared
from gccluster.errors import stage_errors
from gccluster.assignments import assignment_rows, write_assignments
from gccluster.evaluation import head_assignments, metrics_by_round, round_metrics, select_round, stage_one_metrics
from gccluster.io import read_npz, write_csv, write_json
from gccluster.features import kmeans_space_encoder
from gccluster.models.loading import load_clustering_branch, load_projector
from gccluster.runtime import resolve_device, seed_everything

app = typer.Typer(add_completion=False)


@app.command()
def main(params_file: Path = typer.Option(paths.PARAMS, "--params")) -> None:
    with stage_errors("evaluate"):
        params = load_params(params_file)
        device = resolve_device(params.base.device)
        data = load_prepared(paths.PREPARED_DIR)
        seed_everything(params.base.seed)
        backbone, head = load_clustering_branch(paths.BACKBONE, paths.CLUSTER_HEAD)
        kmeans = read_npz(paths.KMEANS, ("centers", "space"), "K-means centers and their space")
        space = str(kmeans["space"])
        projector = load_projector(paths.PROJECTOR, backbone.feature_dim) if space == "projection" else None
        stage_one = stage_one_metrics(
            data, backbone, head, kmeans["centers"], device, kmeans_space_encoder(backbone, projector, space),
            params.evaluate.batch_size, params.evaluate.pixel_kmeans_n_init, params.base.seed, params.base.precision,
        )
        metrics = dict(stage_one)
        chain = round_chain(params.gcc.rounds)
        rounds = round_metrics(data, chain, device, params.evaluate.batch_size, params.base.seed,
                               precision=params.base.precision)
        metrics["rounds"] = rounds
        # The GCC result: chosen from the rounds' held-out agreement (no label) or the last round.
        result = select_round(chain, {name: rounds[name]["heldout_agreement"] for name in chain},
                              params.gcc.select_round)
        metrics["final"] = {**{k: v for k, v in rounds[result].items() if k not in ("heldout_agreement", "train_bank_fit")},
                            "round": result}
        final = paths.RoundPaths(result)
        for method, (backbone_file, head_file) in zip(
                paths.GCC_ASSIGNMENT_METHODS, ((paths.BACKBONE, paths.CLUSTER_HEAD), (final.backbone, final.cluster_head))):
            branch = load_clustering_branch(backbone_file, head_file)
            predict = head_assignments(*branch, device, params.evaluate.batch_size, params.base.precision)
            rows = assignment_rows(data, predict)
            write_assignments(paths.assignments_file(method), rows)
        write_csv(paths.METRICS_BY_ROUND, metrics_by_round(metrics, rounds))
        write_json(paths.METRICS, metrics)
        for name, scores in [*stage_one.items(), *rounds.items()]:
            print(f"{name:>15}: " + "  ".join(f"{k}={v:.4f}" for k, v in scores.items() if isinstance(v, float)))
        print(f"GCC result: round {result} (gcc.select_round: {params.gcc.select_round})")


if __name__ == "__main__":
    app()
