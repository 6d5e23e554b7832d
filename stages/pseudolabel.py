"""DVC stage `pseudolabel`: K-means pseudo labels on F(X), then the cluster head C (Eq. 2)."""

from pathlib import Path

import typer

from gccluster import paths
from gccluster.checkpoints import save_checkpoint
from gccluster.config import load_params
from gccluster.data.prepare import load_prepared, require_images_for_clusters
from gccluster.errors import stage_errors
from gccluster.features import extract_features, kmeans_space_encoder
from gccluster.io import write_epoch_curves, write_npz
from gccluster.models.loading import load_backbone, load_projector
from gccluster.runtime import resolve_device, seed_everything
from gccluster.train.pseudolabel import kmeans_pseudo_labels, train_cluster_head

app = typer.Typer(add_completion=False)


@app.command()
def main(params_file: Path = typer.Option(paths.PARAMS, "--params")) -> None:
    with stage_errors("pseudolabel"):
        params = load_params(params_file)
        cfg = params.pseudolabel
        device = resolve_device(params.base.device)
        data = load_prepared(paths.PREPARED_DIR)
        require_images_for_clusters(data, cfg.n_clusters, "pseudolabel.n_clusters")
        backbone = load_backbone(paths.BACKBONE)
        generator = seed_everything(params.base.seed)
        features = extract_features(backbone, data.train.images, device, precision=params.base.precision)
        if cfg.kmeans_space == "projection":
            encoder = kmeans_space_encoder(backbone, load_projector(paths.PROJECTOR, backbone.feature_dim), "projection")
            kmeans_input = extract_features(encoder, data.train.images, device, precision=params.base.precision)
        else:
            kmeans_input = features
        kmeans = kmeans_pseudo_labels(kmeans_input, cfg.n_clusters, cfg.kmeans_n_init, params.base.seed)
        # C always reads F(x); only where its targets come from depends on kmeans_space.
        head, epoch_loss = train_cluster_head(features, kmeans.labels, cfg, device, generator)
        write_npz(paths.KMEANS, centers=kmeans.centers, train_labels=kmeans.labels, space=cfg.kmeans_space)
        write_epoch_curves(paths.HEAD_LOSS, loss=epoch_loss)
        arch = {"in_dim": backbone.feature_dim, "n_clusters": cfg.n_clusters, "hidden_dim": cfg.head_hidden}
        save_checkpoint(paths.CLUSTER_HEAD, "cluster_head", head, arch, cfg.model_dump())


if __name__ == "__main__":
    app()
