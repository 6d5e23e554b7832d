"""Label-free choice of the Stage I recipe (README, "Label-free choices"), on the dataset of
params.yaml.

Each candidate is one combination of `--grid` values (dotted params keys, e.g.
`pretrain.readout=flatten,pool`); F and g are pretrained with the params otherwise as
given, and K-means runs on the train split in each space of `--spaces` (F(x), or the
projection g(F(x)); no retraining per space). Each (candidate, space) is scored by
K-means stability (`gccluster.selection.kmeans_stability`, declared before any candidate
ran); the highest wins. Pretext + K-means scores on the test split are computed for a
sensitivity table only: they are never used to choose.

    python benchmarks/select_pretext.py --out benchmarks/label_free_selection/digits_stage1.csv \
        --grid pretrain.readout=flatten,pool --grid pretrain.augment.jitter=0,0.4

Appends one row per (candidate, space) as each finishes; candidates already in the file are
skipped (resumable). Prints the table and the choice.
"""

from __future__ import annotations

import csv
import itertools
import time
from pathlib import Path

import torch
import typer
import yaml

from gccluster.config import load_params, params_to_dict, validate_params
from gccluster.data.prepare import load_prepared, prepare_dataset
from gccluster.features import extract_features, kmeans_space_encoder
from gccluster.metrics import clustering_scores
from gccluster.runtime import resolve_device, seed_everything
from gccluster.scratch_project import deep_update
from gccluster.selection import kmeans_stability
from gccluster.train.pretrain import pretrain_simclr
from gccluster.train.pseudolabel import assign_to_centers, kmeans_pseudo_labels
from gccluster.machine import cpu_name

RESULT_COLUMNS = ("space", "kmeans_stability", "final_simclr_loss", "seconds", "test_acc", "test_nmi", "test_ari")


def parse_grid(grid: list[str]) -> dict[str, list]:
    """`key=v1,v2` strings -> {key: [v1, v2]}, values parsed as YAML scalars."""
    axes = {}
    for item in grid:
        key, _, values = item.partition("=")
        if not values:
            raise typer.BadParameter(f"--grid {item!r}: expected key=value1,value2")
        axes[key] = [yaml.safe_load(v) for v in values.split(",")]
    return axes


def with_overrides(raw: dict, overrides: dict[str, object]) -> dict:
    """`raw` with each dotted key set (the merge the gate and tests use, `deep_update`)."""
    for dotted, value in overrides.items():
        for part in reversed(dotted.split(".")):
            value = {part: value}
        deep_update(raw, value)
    return raw


def main(
    params_file: Path = typer.Option(Path("params.yaml"), "--params"),
    out: Path = typer.Option(Path("benchmarks/label_free_selection/stage1.csv"), "--out"),
    grid: list[str] = typer.Option(["pretrain.readout=flatten,pool"], "--grid"),
    spaces: list[str] = typer.Option(["backbone", "projection"], "--spaces"),
    stability_runs: int = typer.Option(10, "--stability-runs"),
) -> None:
    base = load_params(params_file)
    device = resolve_device(base.base.device)
    prepared = Path("data/prepared")
    data = load_prepared(prepared) if prepared.is_dir() else prepare_dataset(base.data, base.base.data_root)
    k, seed = base.pseudolabel.n_clusters, base.base.seed
    axes = parse_grid(grid)
    columns = (*axes, *RESULT_COLUMNS)
    out.parent.mkdir(parents=True, exist_ok=True)
    done: set[tuple[str, ...]] = set()
    if out.is_file():
        with open(out) as handle:
            done = {tuple(r[c] for c in (*axes, "space")) for r in csv.DictReader(handle)}
    else:
        out.write_text(",".join(columns) + "\n")
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; {data.meta['dataset']}, {len(data.train.images)} train images")
    for values in itertools.product(*axes.values()):
        overrides = dict(zip(axes, values))
        todo = [s for s in spaces if tuple(map(str, (*values, s))) not in done]
        if not todo:
            continue
        params = validate_params(with_overrides(params_to_dict(base), overrides), "candidate")
        start = time.perf_counter()
        result = pretrain_simclr(data.pretrain_images(), data.meta["dataset"], params.pretrain, device,
                                 seed_everything(seed), precision=params.base.precision)
        seconds = time.perf_counter() - start
        for space in todo:
            encoder = kmeans_space_encoder(result.backbone, result.projector, space)
            train_features = extract_features(encoder, data.train.images, device, precision=params.base.precision)
            stability = kmeans_stability(train_features, k, runs=stability_runs, seed=seed)
            # Sensitivity only (labels): never read when choosing.
            kmeans = kmeans_pseudo_labels(train_features, k, params.pseudolabel.kmeans_n_init, seed)
            test = clustering_scores(
                data.test.labels,
                assign_to_centers(extract_features(encoder, data.test.images, device, precision=params.base.precision),
                                  kmeans.centers),
            )
            row = [*values, space, round(stability, 4), round(result.epoch_loss[-1], 4), round(seconds, 1),
                   test["acc"], test["nmi"], test["ari"]]
            with open(out, "a") as handle:
                handle.write(",".join(map(str, row)) + "\n")
            print(dict(zip(columns, row)), flush=True)
    with open(out) as handle:
        rows = list(csv.DictReader(handle))
    best = max(rows, key=lambda r: float(r["kmeans_stability"]))
    print("chosen by K-means stability: " + ", ".join(f"{c}={best[c]}" for c in (*axes, "space", "kmeans_stability")))


if __name__ == "__main__":
    typer.run(main)
