"""DVC stage `figures`: t-SNE of test features (Fig. 3), generated images by round (Fig. 4)
and the scores by round -> results/figures/."""

import csv
import json
from pathlib import Path

import numpy as np
import typer
from sklearn.manifold import TSNE

from gccluster import paths
from gccluster.config import load_params, round_chain
from gccluster.data.prepare import load_prepared
from gccluster.errors import UserError, stage_errors
from gccluster.features import extract_features, predict_clusters
from gccluster.figures import first_per_cluster, plot_image_panels, plot_metrics_by_round, plot_tsne_pair
from gccluster.io import read_npz
from gccluster.models.loading import load_backbone, load_clustering_branch
from gccluster.runtime import resolve_device, seed_everything

app = typer.Typer(add_completion=False)


@app.command()
def main(params_file: Path = typer.Option(paths.PARAMS, "--params")) -> None:
    with stage_errors("figures"):
        params = load_params(params_file)
        cfg = params.figures
        device = resolve_device(params.base.device)
        seed_everything(params.base.seed)
        data = load_prepared(paths.PREPARED_DIR)
        chain = round_chain(params.gcc.rounds)
        final = paths.RoundPaths(chain[-1])

        # Fig. 3: the same random test images, pretext features vs the final round's.
        labelled = np.flatnonzero(data.test.labels >= 0)
        rng = np.random.default_rng(params.base.seed)
        chosen = rng.choice(labelled, size=min(cfg.tsne_samples, len(labelled)), replace=False)
        images, labels = data.test.images[chosen], data.test.labels[chosen]
        perplexity = min(cfg.tsne_perplexity, (len(chosen) - 1) / 3)
        maps = []
        for backbone in (load_backbone(paths.BACKBONE), load_backbone(final.backbone)):
            features = extract_features(backbone, images, device)
            tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=params.base.seed)
            maps.append(tsne.fit_transform(features))
        plot_tsne_pair(maps, ["pretext (SimCLR) features F(x)", f"after GCC round {final.name} (final)"],
                       labels, data.meta["class_names"], paths.TSNE_FIGURE)

        # Fig. 4: real train images grouped by the final head's cluster, then each round's bank.
        backbone, head = load_clustering_branch(final.backbone, final.cluster_head)
        clusters = predict_clusters(head, extract_features(backbone, data.train.images, device), device)
        per = cfg.grid_per_cluster
        panels = [("real (by final cluster)", first_per_cluster(data.train.images, clusters, head.n_clusters, per))]
        for name in chain:
            bank = read_npz(paths.RoundPaths(name).bank, ("images", "labels"), "bank")
            panels.append((f"generated, round {name}",
                           first_per_cluster(bank["images"], bank["labels"], head.n_clusters, per)))
        plot_image_panels(panels, per, head.n_clusters, paths.GENERATED_FIGURE)

        # Scores by round.
        if not paths.METRICS_BY_ROUND.is_file():
            raise UserError(f"{paths.METRICS_BY_ROUND}: missing (run the evaluate stage first)")
        with open(paths.METRICS_BY_ROUND) as handle:
            rows = list(csv.DictReader(handle))
        by_round = {"step": [int(r["step"]) for r in rows], "round": [r["round"] for r in rows]}
        for metric in ("acc", "nmi", "ari"):
            by_round[metric] = [float(r[metric]) for r in rows]
        metrics = json.loads(paths.METRICS.read_text())
        references = {
            "ACC of K-means on pixels": metrics["kmeans_pixels"]["acc"],
            "ACC of pretext + K-means": metrics["pretext_kmeans"]["acc"],
        }
        plot_metrics_by_round(by_round, references, paths.METRICS_FIGURE)


if __name__ == "__main__":
    app()
