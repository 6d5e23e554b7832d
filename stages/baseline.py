"""DVC stage `baseline@<name>`: train one seed method on the train split, score it on the
test split with the pipeline's metrics -> results/baselines/<name>/ (DESIGN.md §8): model.pt,
loss.csv, metrics.json (ACC/NMI/ARI when there are labels, and the label-free diagnostics)
and figures/ (clusters.png: the first test images of each predicted cluster, one row per
cluster; and the method's own grids); each image's cluster -> results/assignments/<name>.csv."""

import time
from pathlib import Path

import numpy as np
import typer

from gccluster import paths
from gccluster.assignments import assignment_rows, write_assignments
from gccluster.baselines.common import TrainRequest, predict_images
from gccluster.baselines.registry import method_info, method_module
from gccluster.checkpoints import save_checkpoint
from gccluster.config import load_params
from gccluster.distributed import workers
from gccluster.data.prepare import load_prepared, require_images_for_clusters
from gccluster.errors import UserError, stage_errors
from gccluster.figures import first_per_cluster, save_cluster_grid
from gccluster.io import atomic_dir, write_epoch_curves, write_json
from gccluster.metrics import method_scores
from gccluster.runtime import derive_seed, resolve_device, seed_everything
from gccluster.train.resume import EpochCheckpointer

app = typer.Typer(add_completion=False)
CLUSTER_GRID_PER_CLUSTER = 10


@app.command()
def main(
    name: str = typer.Argument(..., help="a registered method, e.g. dccs"),
    params_file: Path = typer.Option(paths.PARAMS, "--params"),
) -> None:
    with stage_errors(f"baseline@{name}"):
        params = load_params(params_file)
        method_info(name)
        if name not in params.baselines.run:
            raise UserError(f"baselines.run = {list(params.baselines.run)} does not list {name!r}")
        method = method_module(name)
        cfg = getattr(params.baselines, name)
        with workers(params.base.nproc, params.base.device, f"baseline@{name}") as world:
            device = resolve_device(params.base.device)
            data = load_prepared(paths.PREPARED_DIR)
            k = cfg.resolved_n_clusters(params.pseudolabel.n_clusters)
            require_images_for_clusters(data, k, f"baselines.{name}.n_clusters" if cfg.n_clusters
                                        else "pseudolabel.n_clusters")
            generator = seed_everything(derive_seed(params.base.seed, "baseline", name))
            config = {"base": params.base.model_dump(), name: cfg.model_dump(), "n_clusters": k, "data": data.meta}
            checkpointer = EpochCheckpointer(f"baseline_{name}", config, inputs=[paths.PREPARED_DIR],
                                             code=Path(method.__file__))
            started = time.monotonic()
            result = method.train(TrainRequest(
                images=data.train.images, dataset=data.meta["dataset"], n_clusters=k,
                config=cfg, device=device, precision=params.base.precision, generator=generator,
                checkpointer=checkpointer,
            ))
        if not world.is_main:
            return
        # Labels are read from here on only, to score the finished model.
        test = predict_images(result.model, data.test.images, device, precision=params.base.precision)
        predicted = test.clusters
        metrics = {
            **method_scores(data.test.labels if data.labeled else None, predicted, k, test.features, params.base.seed),
            "protocol": data.meta["protocol"],
            "training": {**result.summary, "wall_seconds": round(time.monotonic() - started, 1)},
        }
        files = paths.BaselinePaths(name)
        write_epoch_curves(files.loss, **result.curves)
        save_checkpoint(files.model, method.CHECKPOINT_KIND, result.model, result.arch, config)

        def predict(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            out = predict_images(result.model, images, device, precision=params.base.precision)
            return out.clusters, out.confidence

        write_assignments(files.assignments, assignment_rows(data, predict))
        with atomic_dir(files.figures) as folder:
            save_cluster_grid(first_per_cluster(data.test.images, predicted, k,
                                                CLUSTER_GRID_PER_CLUSTER), CLUSTER_GRID_PER_CLUSTER,
                              folder / "clusters.png")
            for figure, (images, per_row) in result.figures.items():
                save_cluster_grid(images, per_row, folder / f"{figure}.png")
        write_json(files.metrics, metrics)
        checkpointer.clear()
        ended = result.summary.get("stop_reason")
        print(f"baseline@{name}: " + "  ".join(f"{key}={metrics[key]:.4f}" for key in ("acc", "nmi", "ari", "balance")
                                               if key in metrics)
              + (f"  ({ended})" if ended else ""))


if __name__ == "__main__":
    app()
