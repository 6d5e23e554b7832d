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


if __name__ == "__main__":
    app()
