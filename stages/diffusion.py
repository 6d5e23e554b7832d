"""DVC stage `diffusion`: train the class-conditional DDPM G (Eq. 6) on real train images
labelled by the frozen F and C -> results/diffusion/unet.pt (its samples: `diffusion_samples`)."""

from pathlib import Path

import typer

from gccluster import paths
from gccluster.checkpoints import save_checkpoint
from gccluster.config import load_params
from gccluster.data.prepare import load_prepared
from gccluster.diffusion import build_unet, train_diffusion, unet_arch
from gccluster.distributed import workers
from gccluster.errors import stage_errors
from gccluster.features import extract_features, predict_clusters
from gccluster.io import write_epoch_curves
from gccluster.models.loading import load_clustering_branch
from gccluster.runtime import resolve_device, seed_everything
from gccluster.train.resume import EpochCheckpointer

app = typer.Typer(add_completion=False)


@app.command()
def main(params_file: Path = typer.Option(paths.PARAMS, "--params")) -> None:
    with stage_errors("diffusion"):
        params = load_params(params_file)
        cfg = params.diffusion
        with workers(params.base.nproc, params.base.device, "diffusion") as world:
            device = resolve_device(params.base.device)
            data = load_prepared(paths.PREPARED_DIR)
            backbone, head = load_clustering_branch(paths.BACKBONE, paths.CLUSTER_HEAD)
            generator = seed_everything(params.base.seed)
            features = extract_features(backbone, data.train.images, device, precision=params.base.precision)
            pseudo = predict_clusters(head, features, device)
            arch = unet_arch(cfg, data.meta["image_size"], data.meta["channels"], head.n_clusters)
            config = {"base": params.base.model_dump(), "diffusion": cfg.training_settings(), "data": data.meta}
            checkpointer = EpochCheckpointer("diffusion", config, code=Path(__file__),
                                             inputs=[paths.PREPARED_DIR, paths.BACKBONE, paths.CLUSTER_HEAD])
            result = train_diffusion(
                build_unet(**arch), data.train.images, pseudo, cfg, cfg.epochs, cfg.lr, device, generator,
                "diffusion", checkpointer, precision=params.base.precision,
            )
        if not world.is_main:
            return
        write_epoch_curves(paths.DIFFUSION_LOSS, loss=result.epoch_loss)
        save_checkpoint(paths.UNET, "unet", result.unet, arch, config)
        checkpointer.clear()


if __name__ == "__main__":
    app()
