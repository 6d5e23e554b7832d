"""DVC stage `report`: results/report.md from the run's metrics (ablations: `gccluster report`)."""

from pathlib import Path

import typer

from gccluster import paths
from gccluster.errors import stage_errors
from gccluster.report import write_report

app = typer.Typer(add_completion=False)


@app.command()
def main(params_file: Path = typer.Option(paths.PARAMS, "--params")) -> None:
    with stage_errors("report"):
        # `dvc exp show` cannot run while `dvc repro` holds the repository lock; the CLI
        # command `gccluster report` adds the ablation table afterwards.
        write_report(params_file, with_experiments=False)


if __name__ == "__main__":
    app()
