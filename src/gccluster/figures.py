"""Figures: image grids (one row per cluster), t-SNE (Fig. 3), generated images by round
(Fig. 4) and the metrics by round. Ground-truth labels only colour the t-SNE."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from gccluster.io import atomic_path  # noqa: E402


def grid_array(images: np.ndarray, per_row: int) -> np.ndarray:
    """uint8 (N, H, W, C) images tiled into one uint8 RGB array, `per_row` images per row."""
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
    if tensor.shape[1] == 1:
        tensor = tensor.expand(-1, 3, -1, -1)
    grid = make_grid(tensor, nrow=per_row, padding=2, pad_value=255)
    return grid.permute(1, 2, 0).numpy().astype(np.uint8)


def save_cluster_grid(images: np.ndarray, per_row: int, path: str | Path) -> None:
    """Save uint8 (N, H, W, C) images as a PNG grid, `per_row` images per row (row k = cluster k).

    Small images (digits are 16x16) are enlarged with nearest-neighbour to about 48 pixels a
    side so that the grid is readable.
    """
    scale = max(1, 48 // images.shape[1])
    image = Image.fromarray(grid_array(images, per_row))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def first_per_cluster(images: np.ndarray, labels: np.ndarray, n_clusters: int, per_cluster: int) -> np.ndarray:
    """The first `per_cluster` images of each cluster in cluster order, blank where a cluster
    has fewer: rows for `save_cluster_grid`."""
    blank = np.zeros_like(images[:1])
    rows = []
    for k in range(n_clusters):
        members = images[labels == k][:per_cluster]
        pad = np.repeat(blank, per_cluster - len(members), axis=0)
        rows.append(np.concatenate([members, pad]))
    return np.concatenate(rows)


def _save_figure(fig: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_tsne_pair(
    embeddings: list[np.ndarray], titles: list[str], labels: np.ndarray, class_names: list[str], path: str | Path
) -> None:
    """Fig. 3: 2-D t-SNE maps side by side, points coloured by their true class."""
    fig, axes = plt.subplots(1, len(embeddings), figsize=(6.2 * len(embeddings), 5.6))
    axes = np.atleast_1d(axes)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, points, title in zip(axes, embeddings, titles):
        for k, name in enumerate(class_names):
            mask = labels == k
            ax.scatter(points[mask, 0], points[mask, 1], s=6, color=cmap(k % cmap.N), label=name, alpha=0.8)
        ax.set_title(title)
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(title="true class", loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=3, fontsize=8)
    _save_figure(fig, path)


def plot_image_panels(panels: list[tuple[str, np.ndarray]], per_row: int, n_rows: int, path: str | Path) -> None:
    """Fig. 4: grids side by side (e.g. real images, then each round's generated images);
    row k of every panel is cluster k."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 0.6, 0.42 * n_rows + 1.2))
    axes = np.atleast_1d(axes)
    for ax, (title, images) in zip(axes, panels):
        ax.imshow(grid_array(images, per_row), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].set_ylabel("cluster (one row each, 0 at the top)")
    _save_figure(fig, path)


def plot_metrics_by_round(by_round: dict[str, list], references: dict[str, float], path: str | Path,
                          scores: tuple[str, ...] = ("acc", "nmi", "ari")) -> None:
    """The `scores` (ACC, NMI, ARI; or, without labels, balance and silhouette) of the
    Stage I head (step 0) and of each GCC round, with the K-means references as dashed lines."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    steps = by_round["step"]
    for metric, marker in zip(scores, ("o", "s", "^")):
        ax.plot(steps, by_round[metric], marker=marker, label=metric.upper() if len(metric) == 3 else metric)
    for (name, value), style in zip(references.items(), (":", "--")):
        ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=name)
    ax.set_xticks(steps)
    ax.set_xticklabels(by_round["round"], rotation=0)
    ax.set_xlabel("model (Stage I head, then GCC rounds)")
    ax.set_ylabel("score on the test split")
    low = min([0.0] + [v for metric in scores for v in by_round[metric] if v == v])  # silhouette may be < 0
    ax.set_ylim(low - 0.02 if low < 0 else 0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Clustering scores by round")
    _save_figure(fig, path)
