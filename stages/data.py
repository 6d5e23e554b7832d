"""DVC stage `data`: prepare the dataset named in params into data/prepared."""

from pathlib import Path

import numpy as np
import typer

from gccluster import paths
from gccluster.config import load_params
from gccluster.data.folder import skipped_summary
from gccluster.data.prepare import prepare_dataset, require_images_for_clusters, write_prepared
from gccluster.errors import stage_errors

app = typer.Typer(add_completion=False)


@app.command()
def main(params_file: Path = typer.Option(paths.PARAMS, "--params")) -> None:
    with stage_errors("data"):
        params = load_params(params_file)
        prepared = prepare_dataset(params.data, params.base.data_root)
        # An image folder is counted only now: every K of the run must fit it before hours
        # of pretraining, not after (params validation checks the built-in datasets).
        for key, k in params.cluster_counts().items():
            require_images_for_clusters(prepared, k, key)
        write_prepared(prepared, paths.PREPARED_DIR)
        meta = prepared.meta
        unlabeled = f" unlabeled (pretraining only)={meta['n_unlabeled']}" if meta["n_unlabeled"] else ""
        if meta["dataset"] == "image_folder":
            labels = (f" (labels for evaluation only: {meta['n_classes']} class subfolders, "
                      f"{', '.join(meta['class_names'][:10])}{', ...' if meta['n_classes'] > 10 else ''})"
                      if meta["labeled"] else " (no class subfolders: label-free)")
        else:
            labels = ""
        print(f"data: {meta['dataset']} train={meta['n_train']} test={meta['n_test']}{unlabeled} "
              f"size={meta['image_size']} from {meta['source']}{labels}")
        for line in skipped_summary(meta.get("skipped") or {}):
            print(f"data: {line}")
        if params.data.imbalance_remove is not None:
            counts = np.bincount(prepared.train.labels, minlength=meta["n_classes"])
            print(f"data: imbalanced train split, images per class: {counts.tolist()}")


if __name__ == "__main__":
    app()
