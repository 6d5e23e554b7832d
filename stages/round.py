"""DVC stage `round@<name>`: one GCC round (3.4).

(a) sample a labelled bank with the frozen G, labels in proportion to the clusters C
predicts on the train split; (b) fine-tune F and C with Eq. 12 on real batches paired with
bank images; (c) fine-tune G with Eq. 6 on the real images and the new pseudo labels.
"""

from pathlib import Path

import numpy as np
import typer

from gccluster import paths
from gccluster.checkpoints import save_checkpoint
from gccluster.config import load_params, round_chain
from gccluster.data.prepare import load_prepared
from gccluster.diffusion import sample_images, train_diffusion
from gccluster.errors import UserError, stage_errors
from gccluster.features import extract_features, predict_clusters
from gccluster.figures import first_per_cluster, save_cluster_grid
from gccluster.io import write_epoch_curves, write_npz
from gccluster.models.loading import load_clustering_branch, load_unet
from gccluster.runtime import resolve_device, seed_everything
from gccluster.train.calibrate import CURVE_COLUMNS, Bank, bank_label_counts, calibrate_clustering
from gccluster.train.resume import EpochCheckpointer

app = typer.Typer(add_completion=False)


@app.command()
def main(
    name: str = typer.Argument(..., help="round name, a key of gcc.rounds"),
    params_file: Path = typer.Option(paths.PARAMS, "--params"),
) -> None:
    stage = f"round@{name}"
    with stage_errors(stage):
        params = load_params(params_file)
        cfg = params.gcc
        if name not in cfg.rounds:
            raise UserError(f"round {name!r} is not in gcc.rounds (allowed: {', '.join(cfg.rounds)})")
        index = round_chain(cfg.rounds).index(name) + 1
        device = resolve_device(params.base.device)
        data = load_prepared(paths.PREPARED_DIR)
        backbone_path, head_path, unet_path = paths.round_inputs(cfg.rounds[name].init)
        backbone, head = load_clustering_branch(backbone_path, head_path)
        unet = load_unet(unet_path, expected_clusters=head.n_clusters)
        # Each round draws its own noise: seed + round position in the chain.
        generator = seed_everything(params.base.seed + index)
        out = paths.RoundPaths(name)
        config = {"base": params.base.model_dump(), "gcc": cfg.model_dump(), "round": name,
                  "diffusion": params.diffusion.model_dump(), "data": data.meta}

        # (a) The bank, from the frozen G.
        predicted = predict_clusters(head, extract_features(backbone, data.train.images, device), device)
        counts = bank_label_counts(predicted, head.n_clusters, cfg.bank_size)
        bank_labels = np.repeat(np.arange(head.n_clusters), counts)
        bank = Bank(sample_images(unet, params.diffusion, bank_labels, device, generator, desc=f"{stage} bank",
                                  precision=params.base.precision),
                    bank_labels)

        # (b) F and C with Eq. 12.
        cluster_ckpt = EpochCheckpointer(f"{name}-cluster", config)
        history = calibrate_clustering(backbone, head, data.train.images, bank, cfg, device, generator,
                                       stage, cluster_ckpt, precision=params.base.precision)

        # (c) G with Eq. 6 on the new pseudo labels.
        pseudo = predict_clusters(head, extract_features(backbone, data.train.images, device), device)
        ddpm_ckpt = EpochCheckpointer(f"{name}-ddpm", config)
        ddpm = train_diffusion(unet, data.train.images, pseudo, params.diffusion, cfg.diffusion_epochs,
                               cfg.diffusion_lr, device, generator, stage, ddpm_ckpt,
                               precision=params.base.precision)

        write_npz(out.bank, images=bank.images, labels=bank.labels)
        per_row = params.diffusion.grid_per_cluster
        save_cluster_grid(first_per_cluster(bank.images, bank.labels, head.n_clusters, per_row), per_row,
                          out.bank_grid)
        write_epoch_curves(out.cluster_loss, **{column: history[column] for column in CURVE_COLUMNS})
        write_epoch_curves(out.diffusion_loss, loss=ddpm.epoch_loss)
        save_checkpoint(out.backbone, "backbone", backbone, backbone.arch, config)
        save_checkpoint(out.cluster_head, "cluster_head", head, head.arch, config)
        save_checkpoint(out.unet, "unet", ddpm.unet, unet.arch, config)
        cluster_ckpt.clear()
        ddpm_ckpt.clear()


if __name__ == "__main__":
    app()
