"""DVC stage `pretrain`: SimCLR pretraining of F (Eq. 1) -> results/pretrain/."""

from pathlib import Path

import typer

from gccluster import paths
from gccluster.checkpoints import save_checkpoint
from gccluster.config import load_params
from gccluster.data.prepare import load_prepared
from gccluster.distributed import workers
from gccluster.errors import stage_errors
from gccluster.io import write_epoch_curves
from gccluster.runtime import resolve_device, seed_everything
from gccluster.train.pretrain import pretrain_simclr
from gccluster.train.resume import EpochCheckpointer

app = typer.Typer(add_completion=False)


@app.command()
def main(params_file: Path = typer.Option(paths.PARAMS, "--params")) -> None:
    with stage_errors("pretrain"):
        params = load_params(params_file)
        with workers(params.base.nproc, params.base.device, "pretrain") as world:
            device = resolve_device(params.base.device)
            data = load_prepared(paths.PREPARED_DIR)
            generator = seed_everything(params.base.seed)
            config = {"base": params.base.model_dump(), "pretrain": params.pretrain.model_dump(), "data": data.meta}
            checkpointer = EpochCheckpointer("pretrain", config, inputs=[paths.PREPARED_DIR], code=Path(__file__))
            result = pretrain_simclr(
                data.pretrain_images(), data.meta["dataset"], params.pretrain, device, generator, checkpointer,
                precision=params.base.precision,
            )
        if not world.is_main:
            return
        write_epoch_curves(paths.PRETRAIN_LOSS, loss=result.epoch_loss)
        save_checkpoint(paths.BACKBONE, "backbone", result.backbone, result.arch, config)
        save_checkpoint(paths.PROJECTOR, "projector", result.projector, result.projector_arch, config)
        checkpointer.clear()


if __name__ == "__main__":
    app()
