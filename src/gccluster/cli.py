"""`gccluster`: project commands that are not pipeline stages (stages live in stages/)."""

from __future__ import annotations

from pathlib import Path

import typer

from gccluster import paths
from gccluster.errors import stage_errors

app = typer.Typer(add_completion=False, help="GCC: Generative Calibration Clustering, as a DVC pipeline.")


@app.command()
def preset(
    name: str = typer.Argument(..., help="digits, fashion_mnist, cifar10, cifar100_20 or stl10"),
    params_file: Path = typer.Option(paths.PARAMS, "--params", help="file to (over)write"),
) -> None:
    """Write params.yaml for a dataset preset (defaults + the preset's overrides)."""
    from gccluster.presets import write_preset

    with stage_errors("preset"):
        params = write_preset(name, params_file)
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
