"""DVC stage `diffusion_samples`: a grid of images drawn from the Stage I DDPM G, one row per
cluster -> results/diffusion/samples.png. A stage of its own so that changing how images are
drawn (diffusion.sampler, sample_steps, clip_sample, grid_per_cluster) never retrains G."""

from pathlib import Path

import typer

from gccluster import paths
from gccluster.config import load_params
from gccluster.diffusion import grid_labels, sample_images
from gccluster.errors import stage_errors
from gccluster.figures import save_cluster_grid
from gccluster.models.loading import load_unet
from gccluster.runtime import derive_seed, resolve_device, seed_everything

app = typer.Typer(add_completion=False)


@app.command()
def main(params_file: Path = typer.Option(paths.PARAMS, "--params")) -> None:
    with stage_errors("diffusion_samples"):
        params = load_params(params_file)
        cfg = params.diffusion
        device = resolve_device(params.base.device)
        unet = load_unet(paths.UNET)
        generator = seed_everything(derive_seed(params.base.seed, "diffusion_samples"))
        labels = grid_labels(unet.arch["n_clusters"], cfg.grid_per_cluster)
        grid = sample_images(unet, cfg, labels, device, generator, desc="diffusion samples",
                             precision=params.base.precision)
        save_cluster_grid(grid, cfg.grid_per_cluster, paths.DIFFUSION_SAMPLES)


if __name__ == "__main__":
    app()
