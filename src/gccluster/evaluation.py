"""The `evaluate` stage's logic: ACC/NMI/ARI on the evaluation split for every model.

Keys of `results/metrics.json` (stable; later stages add entries beside these):
- `kmeans_pixels`: K-means on raw pixels, fit on train, applied to test (the floor);
- `pretext_kmeans`: K-means on SimCLR features, fit on train, applied to test;
- `cluster_head`: argmax of the cluster head C(F(x)) trained with Eq. 2;
- `rounds.<name>`: each GCC round's C(F(x)) after its fine-tuning, plus two label-free
  figures of agreement between the round's clustering branch and its generator:
  `heldout_agreement`, the fraction of a fresh draw from the round's *output* G (its own
  seed, never trained on: results/<round>/samples.npz) that the round's C(F(.)) assigns to
  the cluster it was generated for; and `train_bank_fit`, the same fraction on the bank
  that F and C were just trained on (drawn from the round's input G; L_ml's optimum is
  exactly this agreement, so it measures fit, not generalisation);
- `final`: the scores of the round `gcc.select_round` names the GCC result (`select_round`),
  with that round's name under "round".
Each entry holds {"acc", "nmi", "ari"} when the data has labels (an image folder without
class subfolders has none), and always the label-free diagnostics of
`metrics.cluster_diagnostics`: "balance", "silhouette" (of the features the method reads:
pixels, the K-means space, F(x)) and "sizes" (test images per cluster).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.preprocessing import normalize

from gccluster.data.prepare import PreparedDataset
from gccluster.models.loading import load_clustering_branch
from gccluster.paths import RoundPaths
from gccluster.features import extract_features, predict_clusters, predict_with_confidence
from gccluster.io import read_npz
from gccluster.metrics import method_scores
from gccluster.train.pseudolabel import assign_to_centers


def flat_pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def pixel_kmeans_predictions(data: PreparedDataset, n_clusters: int, n_init: int, seed: int) -> np.ndarray:
    """K-means on raw pixels scaled to [0, 1]: fit on the train split, predict the test split."""
    kmeans = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(flat_pixels(data.train.images))
    return kmeans.predict(flat_pixels(data.test.images))


def test_labels(data: PreparedDataset) -> np.ndarray | None:
    """The test split's classes, or None for an unlabelled image folder."""
    return data.test.labels if data.labeled else None


def stage_one_metrics(
    data: PreparedDataset,
    backbone: torch.nn.Module,
    head: torch.nn.Module,
    centers: np.ndarray,
    device: torch.device,
    kmeans_encoder: torch.nn.Module,
    batch_size: int,
    pixel_kmeans_n_init: int,
    seed: int,
    precision: str,
) -> dict[str, dict[str, float]]:
    """`kmeans_encoder` maps images to the space the K-means `centers` live in (F, or g∘F:
    `features.kmeans_space_encoder`)."""
    labels, k = test_labels(data), len(centers)
    features = extract_features(backbone, data.test.images, device, batch_size, precision=precision)
    kmeans_input = features if kmeans_encoder is backbone else extract_features(
        kmeans_encoder, data.test.images, device, batch_size, precision=precision)
    pixels = pixel_kmeans_predictions(data, k, pixel_kmeans_n_init, seed)
    return {
        "kmeans_pixels": method_scores(labels, pixels, k, flat_pixels(data.test.images), seed),
        # K-means on L2-normalised features (`assign_to_centers`): its silhouette there too.
        "pretext_kmeans": method_scores(labels, assign_to_centers(kmeans_input, centers), k, normalize(kmeans_input),
                                        seed),
        "cluster_head": method_scores(labels, predict_clusters(head, features, device), k, features, seed),
    }


def head_scores(
    backbone: torch.nn.Module, head: torch.nn.Module, images: np.ndarray, labels: np.ndarray | None,
    device: torch.device, batch_size: int, seed: int = 0, *, precision: str,
) -> dict:
    features = extract_features(backbone, images, device, batch_size, precision=precision)
    return method_scores(labels, predict_clusters(head, features, device), head.n_clusters, features, seed)


def generated_agreement(
    backbone: torch.nn.Module, head: torch.nn.Module, images: np.ndarray, labels: np.ndarray,
    device: torch.device, batch_size: int, *, precision: str,
) -> float:
    """Fraction of generated images that C(F(.)) assigns to their conditioning cluster."""
    features = extract_features(backbone, images, device, batch_size, precision=precision)
    return round(float(np.mean(predict_clusters(head, features, device) == labels)), 4)


def round_metrics(
    data: PreparedDataset, chain: list[str], device: torch.device, batch_size: int, seed: int = 0, *,
    precision: str,
) -> dict[str, dict]:
    out = {}
    for name in chain:
        files = RoundPaths(name)
        backbone, head = load_clustering_branch(files.backbone, files.cluster_head)
        scores = head_scores(backbone, head, data.test.images, test_labels(data), device, batch_size, seed,
                             precision=precision)
        for key, path, what in (("heldout_agreement", files.samples, "held-out samples"),
                                ("train_bank_fit", files.bank, "bank")):
            drawn = read_npz(path, ("images", "labels"), what)
            scores[key] = generated_agreement(backbone, head, drawn["images"], drawn["labels"], device, batch_size,
                                              precision=precision)
        out[name] = scores
    return out


ROUND_RULES = ("heldout_stop", "last")


def select_round(chain: list[str], heldout_agreement: dict[str, float], rule: str) -> str:
    """The round that is the GCC result (`gcc.select_round`; README, "Label-free choices").

    `heldout_stop` (default, declared 2026-12-04): stop when the held-out agreement stops
    rising, as issue 11 proposed: the first round of the chain whose successor's held-out
    agreement is not higher than its own, or the last round when it rises throughout. Later
    rounds are scored and reported, never chosen. It reads the rounds' held-out agreement
    only (generated images and their conditioning clusters), no label. `last`: the last
    round of the chain, the paper's reading of "repeated for many rounds".
    """
    if rule not in ROUND_RULES:
        raise ValueError(f"select_round rule = {rule!r}: allowed {', '.join(ROUND_RULES)}")
    if rule == "last":
        return chain[-1]
    for current, following in zip(chain, chain[1:]):
        if heldout_agreement[following] <= heldout_agreement[current]:
            return current
    return chain[-1]


BY_ROUND_SCORES = ("acc", "nmi", "ari", "balance", "silhouette")


def metrics_by_round(stage_one: dict, rounds: dict[str, dict]) -> dict[str, list]:
    """Columns for `dvc plots`: step 0 is the Stage I head, step i the i-th round; ACC, NMI,
    ARI when the data has labels, then balance and silhouette (empty where undefined)."""
    names = ["cluster_head", *rounds]
    rows = [stage_one["cluster_head"], *rounds.values()]
    present = [metric for metric in BY_ROUND_SCORES if metric in rows[0]]
    return {
        "step": list(range(len(names))),
        "round": names,
        **{metric: ["" if row[metric] is None else row[metric] for row in rows] for metric in present},
    }


def head_assignments(backbone: torch.nn.Module, head: torch.nn.Module, device: torch.device, batch_size: int,
                     precision: str):
    """A predictor for `assignments.assignment_rows`: C(F(x)), its argmax and softmax maximum."""
    def predict(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return predict_with_confidence(
            head, extract_features(backbone, images, device, batch_size, precision=precision), device)

    return predict
