"""Label-free choice of the SimCLR temperature and the small CNN's readout (README, "Label-free
choices"), on the dataset of params.yaml.

For each candidate (pretrain.temperature x pretrain.readout), F is pretrained with the params
otherwise as given, the train split's features are extracted, and the candidate is scored by
K-means stability (`gccluster.selection.kmeans_stability`, declared before any candidate ran).
The highest stability is chosen. Pretext + K-means scores on the test split are computed
for a sensitivity table only: they are never used to choose.

    python benchmarks/select_pretext.py                       # all candidates, resumable
    python benchmarks/select_pretext.py --out DIR --temperatures 0.5 1.0 --readouts flatten

Writes DIR/candidates.csv (one row per candidate, appended as each finishes; candidates
already in it are skipped) and prints the table.
"""

from __future__ import annotations

import csv
import platform
import subprocess
import time
from pathlib import Path

import torch
import typer

from gccluster.config import load_params
from gccluster.data.prepare import load_prepared, prepare_dataset
from gccluster.features import extract_features
from gccluster.metrics import clustering_scores
from gccluster.runtime import resolve_device, seed_everything
from gccluster.selection import kmeans_stability
from gccluster.train.pretrain import pretrain_simclr
from gccluster.train.pseudolabel import assign_to_centers, kmeans_pseudo_labels

COLUMNS = ("temperature", "readout", "kmeans_stability", "final_simclr_loss", "seconds",
           "test_acc", "test_nmi", "test_ari")


def cpu_name() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
    out: Path = typer.Option(Path("benchmarks/label_free_selection"), "--out"),
    temperatures: list[float] = typer.Option([0.1, 0.2, 0.5, 1.0], "--temperatures"),
    readouts: list[str] = typer.Option(["flatten", "pool"], "--readouts"),
    stability_runs: int = typer.Option(10, "--stability-runs"),
) -> None:
    params = load_params(params_file)
    device = resolve_device(params.base.device)
    prepared = Path("data/prepared")
    data = load_prepared(prepared) if prepared.is_dir() else prepare_dataset(params.data, params.base.data_root)
    k, seed = params.pseudolabel.n_clusters, params.base.seed
    out.mkdir(parents=True, exist_ok=True)
    table = out / "candidates.csv"
    done = set()
    if table.is_file():
        with open(table) as handle:
            done = {(float(r["temperature"]), r["readout"]) for r in csv.DictReader(handle)}
    else:
        table.write_text(",".join(COLUMNS) + "\n")
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {data.meta['dataset']}, {len(data.train.images)} train images")
    for readout in readouts:
        for temperature in temperatures:
            if (temperature, readout) in done:
                continue
            cfg = params.pretrain.model_copy(update={"temperature": temperature, "readout": readout})
            start = time.perf_counter()
            result = pretrain_simclr(data.pretrain_images(), data.meta["dataset"], cfg, device,
                                     seed_everything(seed), precision=params.base.precision)
            seconds = time.perf_counter() - start
            train_features = extract_features(result.backbone, data.train.images, device)
            stability = kmeans_stability(train_features, k, runs=stability_runs, seed=seed)
            # Sensitivity only (labels): never read when choosing.
            kmeans = kmeans_pseudo_labels(train_features, k, params.pseudolabel.kmeans_n_init, seed)
            test = clustering_scores(
                data.test.labels,
                assign_to_centers(extract_features(result.backbone, data.test.images, device), kmeans.centers),
            )
            row = [temperature, readout, round(stability, 4), round(result.epoch_loss[-1], 4), round(seconds, 1),
                   test["acc"], test["nmi"], test["ari"]]
            with open(table, "a") as handle:
                handle.write(",".join(map(str, row)) + "\n")
            print(dict(zip(COLUMNS, row)), flush=True)
    with open(table) as handle:
        rows = list(csv.DictReader(handle))
    best = max(rows, key=lambda r: float(r["kmeans_stability"]))
    print(f"chosen by K-means stability: temperature {best['temperature']}, readout {best['readout']} "
          f"(stability {best['kmeans_stability']})")


if __name__ == "__main__":
    typer.run(main)
