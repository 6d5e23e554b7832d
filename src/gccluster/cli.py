"""`gccluster`: project commands that are not pipeline stages (stages live in stages/)."""

from __future__ import annotations

from pathlib import Path

import typer

from gccluster import paths
from gccluster.errors import stage_errors

app = typer.Typer(add_completion=False, help="GCC: Generative Calibration Clustering, as a DVC pipeline.")


@app.command()
def preset(
    name: str = typer.Argument(..., help="digits, fashion_mnist, cifar10, cifar100_20, stl10 or image_folder"),
    params_file: Path = typer.Option(paths.PARAMS, "--params", help="file to (over)write"),
    overrides: list[str] = typer.Option([], "--set", help="KEY=VALUE on top of the preset (a YAML value), "
                                        "e.g. --set data.local_dir=my_images; repeatable"),
    force: bool = typer.Option(False, "--force", help="overwrite a params file that a preset did not "
                               "write as it stands (hand edits are lost)"),
) -> None:
    """Write params.yaml for a dataset preset (defaults + the preset's overrides)."""
    from gccluster.presets import write_preset

    with stage_errors("preset"):
        params = write_preset(name, params_file, overrides, force=force)
        typer.echo(f"wrote {params_file} for preset {name} (dataset {params.data.dataset}); run `dvc repro`")


@app.command("presets")
def list_presets() -> None:
    """List the available presets."""
    from gccluster.presets import preset_names

    for name in preset_names():
        typer.echo(name)


@app.command()
def check(params_file: Path = typer.Option(paths.PARAMS, "--params")) -> None:
    """Validate params.yaml without running anything."""
    from gccluster.config import load_params

    with stage_errors("check"):
        load_params(params_file)
        typer.echo(f"{params_file}: ok")


@app.command("pick-k")
def pick_k(
    k_min: int = typer.Option(2, "--min", help="smallest K"),
    k_max: int = typer.Option(20, "--max", help="largest K"),
    params_file: Path = typer.Option(paths.PARAMS, "--params"),
) -> None:
    """Label-free help to choose K: K-means inertia (elbow) and silhouette on the SimCLR
    features of the train images, for each K in a range. Needs the `pretrain` stage
    (`dvc repro pretrain`)."""
    from gccluster.config import load_params
    from gccluster.data.prepare import load_prepared
    from gccluster.errors import UserError
    from gccluster.features import extract_features, kmeans_space_encoder
    from gccluster.models.loading import load_backbone, load_projector
    from gccluster.runtime import resolve_device
    from gccluster.selection import kmeans_k_scan

    with stage_errors("pick-k"):
        params = load_params(params_file)
        if not 2 <= k_min <= k_max:
            raise UserError(f"--min {k_min} --max {k_max}: needs 2 <= min <= max")
        data = load_prepared(paths.PREPARED_DIR)
        backbone = load_backbone(paths.BACKBONE)
        space = params.pseudolabel.kmeans_space
        projector = load_projector(paths.PROJECTOR, backbone.feature_dim) if space == "projection" else None
        features = extract_features(kmeans_space_encoder(backbone, projector, space), data.train.images,
                                    resolve_device(params.base.device), precision=params.base.precision)
        if k_max >= len(features):
            raise UserError(f"--max {k_max}: the train split has only {len(features)} images")
        rows = kmeans_k_scan(features, list(range(k_min, k_max + 1)), params.pseudolabel.kmeans_n_init,
                             params.base.seed)
    typer.echo(f"K-means on {len(features)} train images, pseudolabel.kmeans_space = {space}:")
    typer.echo("   K    inertia  silhouette")
    for row in rows:
        sil = "      –" if row["silhouette"] is None else f"{row['silhouette']:8.4f}"
        typer.echo(f"{row['k']:4d} {row['inertia']:10.2f}  {sil}")
    typer.echo("Pick K at the elbow of the inertia, or where the silhouette peaks; set pseudolabel.n_clusters.")


@app.command()
def report(
    params_file: Path = typer.Option(paths.PARAMS, "--params"),
    experiments: bool = typer.Option(True, "--experiments/--no-experiments",
                                     help="add the ablation table from `dvc exp show --json`"),
) -> None:
    """Write results/report.md: this run beside the paper, rounds, and ablations."""
    from gccluster.report import write_report

    with stage_errors("report"):
        path = write_report(params_file, with_experiments=experiments)
        typer.echo(f"wrote {path}")


@app.command()
def leaderboard(
    output: Path = typer.Option(None, "--output", "-o", help="also write the table to this file"),
) -> None:
    """Min / median / max over seeds of every method, from `dvc exp show --json`.

    Run the seeds first: `dvc exp run --queue -S base.seed=0,1,2` then `dvc exp run --run-all`.
    """
    from gccluster.io import write_text
    from gccluster.report import read_experiments, render_leaderboard

    with stage_errors("leaderboard"):
        text = render_leaderboard(read_experiments())
        if output is not None:
            write_text(output, text)
    typer.echo(text)


@app.command()
def gate(
    diff_file: Path = typer.Argument(..., help="output of `dvc metrics diff --json`"),
    params_file: Path = typer.Option(paths.PARAMS, "--params", help="where ci.metric_tolerance is read"),
) -> None:
    """Fail (exit 1) when ACC, NMI or ARI dropped by more than ci.metric_tolerance."""
    import json

    from gccluster.config import load_params
    from gccluster.gate import metric_regressions

    with stage_errors("gate"):
        tolerance = load_params(params_file).ci.metric_tolerance
        diff = json.loads(diff_file.read_text() or "{}")
        problems = metric_regressions(diff, tolerance)
    for line in problems:
        typer.echo(f"regression: {line}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"metric gate: no ACC/NMI/ARI drop beyond {tolerance}")


if __name__ == "__main__":
    app()
