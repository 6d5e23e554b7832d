"""DVC stage `round@<name>`: one GCC round (3.4).

(a) sample a labelled bank with the frozen G, labels in proportion to the clusters C
predicts on the train split; (b) fine-tune F and C with Eq. 12 on real batches paired with
bank images; (c) fine-tune G with Eq. 6 on the real images and the new pseudo labels;
(d) draw a held-out set from the fine-tuned G (its own seed, never trained on), on which
`evaluate` scores how well the round's C(F(.)) recognises what its G generates.
"""

from pathlib import Path

import torch
import typer

from gccluster import paths
from gccluster.checkpoints import save_checkpoint
from gccluster.config import ROUND_DIFFUSION_KEYS, load_params
from gccluster.data.prepare import load_prepared
from gccluster.diffusion import train_diffusion
from gccluster.distributed import workers
from gccluster.errors import UserError, stage_errors
from gccluster.features import extract_features, predict_clusters
from gccluster.figures import first_per_cluster, save_cluster_grid
from gccluster.io import write_epoch_curves, write_npz
from gccluster.models.loading import load_clustering_branch, load_unet
from gccluster.runtime import derive_seed, resolve_device, seed_everything
from gccluster.train.calibrate import CURVE_COLUMNS, Bank, calibrate_clustering, draw_bank
from gccluster.train.resume import EpochCheckpointer

app = typer.Typer(add_completion=False)

# Images per cluster in bank_grid.png (a constant, so no figure setting reruns a round).
BANK_GRID_PER_CLUSTER = 10


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
        with workers(params.base.nproc, params.base.device, stage) as world:
            device = resolve_device(params.base.device)
            data = load_prepared(paths.PREPARED_DIR)
            inputs = paths.round_inputs(cfg.rounds[name].init)
            backbone, head = load_clustering_branch(inputs[0], inputs[1])
            unet = load_unet(inputs[2], expected_clusters=head.n_clusters)
            k = head.n_clusters
            # Each round draws its own noise from base.seed and its name (not its place in the
            # chain), so adding a round leaves the others' results as they are.
            generator = seed_everything(derive_seed(params.base.seed, name))
            out = paths.RoundPaths(name)
            config = {"base": params.base.model_dump(), "round": name, "init": cfg.rounds[name].init,
                      "gcc": cfg.model_dump(exclude={"rounds", "final_round", "select_round"}),
                      "diffusion": params.diffusion.model_dump(include=set(ROUND_DIFFUSION_KEYS)), "data": data.meta}
            resume = {"inputs": [paths.PREPARED_DIR, *inputs], "code": Path(__file__)}

            def train_features(model: torch.nn.Module):  # F(x) of the train split, in the run's precision
                return extract_features(model, data.train.images, device, precision=params.base.precision)

            # (a) The bank, from the frozen G: once now, or fresh at every epoch of (b). Its
            # label mix follows the clusters C predicts on the train split when the round starts.
            predicted = predict_clusters(head, train_features(backbone), device)
            bank_size = cfg.bank_size or len(data.train.images)

            def draw_training_bank(bank_generator: torch.Generator) -> Bank:
                return draw_bank(unet, predicted, k, bank_size, params.diffusion, device, bank_generator,
                                 f"{stage} bank", params.base.precision)

            bank = draw_training_bank(generator) if cfg.bank_refresh == "round" else draw_training_bank

            # (b) F and C with Eq. 12.
            cluster_ckpt = EpochCheckpointer(f"{name}-cluster", config, **resume)
            calibration = calibrate_clustering(backbone, head, data.train.images, bank, cfg, device, generator,
                                               stage, cluster_ckpt, precision=params.base.precision)
            history, bank = calibration.history, calibration.last_bank

            # (c) G with Eq. 6 on the new pseudo labels.
            pseudo = predict_clusters(head, train_features(backbone), device)
            ddpm_ckpt = EpochCheckpointer(f"{name}-ddpm", config, **resume)
            ddpm = train_diffusion(unet, data.train.images, pseudo, params.diffusion, cfg.diffusion_epochs,
                                   cfg.diffusion_lr, device, generator, stage, ddpm_ckpt,
                                   precision=params.base.precision)

            # (d) Held out: the fine-tuned G, a generator of its own.
            heldout_generator = torch.Generator().manual_seed(derive_seed(params.base.seed, name, "heldout"))
            samples = draw_bank(ddpm.unet, pseudo, k, bank_size, params.diffusion, device, heldout_generator,
                                f"{stage} held-out samples", params.base.precision)
        if not world.is_main:
            return

        write_npz(out.bank, images=bank.images, labels=bank.labels)
        write_npz(out.samples, images=samples.images, labels=samples.labels)
        save_cluster_grid(first_per_cluster(bank.images, bank.labels, k, BANK_GRID_PER_CLUSTER),
                          BANK_GRID_PER_CLUSTER, out.bank_grid)
        write_epoch_curves(out.cluster_loss, **{column: history[column] for column in CURVE_COLUMNS})
        write_epoch_curves(out.diffusion_loss, loss=ddpm.epoch_loss)
        save_checkpoint(out.backbone, "backbone", backbone, backbone.arch, config)
        save_checkpoint(out.cluster_head, "cluster_head", head, head.arch, config)
        save_checkpoint(out.unet, "unet", ddpm.unet, unet.arch, config)
        cluster_ckpt.clear()
        ddpm_ckpt.clear()


if __name__ == "__main__":
    app()
