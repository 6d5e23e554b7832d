"""DVC stage `data`: prepare the dataset named in params into data/prepared."""

from pathlib import Path

import numpy as np
import typer

from gccluster import paths
from gccluster.config import load_params
from gccluster.data.prepare import prepare_dataset, write_prepared
from gccluster.errors import stage_errors

app = typer.Typer(add_completion=False)


@app.command()
def main(params_file: Path = typer.Option(paths.PARAMS, "--params")) -> None:
    with stage_errors("data"):
        params = load_params(params_file)
        prepared = prepare_dataset(params.data, params.base.data_root)
        write_prepared(prepared, paths.PREPARED_DIR)
        meta = prepared.meta
        unlabeled = f" unlabeled (pretraining only)={meta['n_unlabeled']}" if meta["n_unlabeled"] else ""
        print(f"data: {meta['dataset']} train={meta['n_train']} test={meta['n_test']}{unlabeled} "
              f"size={meta['image_size']} from {meta['source']}")
        if params.data.imbalance_remove is not None:
            counts = np.bincount(prepared.train.labels, minlength=meta["n_classes"])
            print(f"data: imbalanced train split, images per class: {counts.tolist()}")


if __name__ == "__main__":
    app()
