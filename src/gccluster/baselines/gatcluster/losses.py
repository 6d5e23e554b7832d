"""GATCluster's targets and losses (Niu et al. 2020, Sec. 3.3-3.4), one function per equation.

Notation: a big batch of M images and K clusters; l (M, K) are the label features (softmax
outputs of the label-feature module) of the un-augmented images, computed in eval mode
without gradients; l^t and l^a (m, K) are the label-feature and attention-module outputs of
a sub-batch of m augmented images. The targets are built once per big batch (Step 1 of
Algorithm 1) and held fixed while the losses are minimised over its sub-batches (Step 2).
Small constants are the official code's (EPS = 1e-5).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

EPS = 1e-5


def balanced_target(label_features: torch.Tensor) -> torch.Tensor:
    """Eq. 5: l̂_ih = (l_ih / z_h) / Σ_h' (l_ih' / z_h'), z_h = Σ_j l_jh over the big batch.

    Dividing by the soft cluster sizes z lifts small clusters and lowers large ones, so the
    target of L_T balances the assignment. EPS guards z and the row sums (code)."""
    scaled = label_features / (label_features.sum(dim=0) + EPS)
    return scaled / (scaled.sum(dim=1, keepdim=True) + EPS)


def attention_target(label_features: torch.Tensor) -> torch.Tensor:
    """Eq. 11: l̂^a_ih = (l_ih² / z_h) / Σ_h' (l_ih'² / z_h'), the sharpened (squared) and
    balanced version of l that the attention branch regresses to (Eq. 10)."""
    scaled = label_features.pow(2) / (label_features.sum(dim=0) + EPS)
    return scaled / (scaled.sum(dim=1, keepdim=True) + EPS)


def kmeans_assignments(targets: torch.Tensor, n_clusters: int, n_init: int, seed: int) -> np.ndarray:
    """The c_i of Eq. 6: k-means (scikit-learn, `n_init` restarts) with K clusters on the
    sharpened targets of Eq. 11, as the code does (the paper says "on the predicted label
    features"). `seed` fixes k-means' initialisation (the code sets none)."""
    data = targets.detach().float().cpu().numpy().astype(np.float64)
    with warnings.catch_warnings():
        # fewer distinct points than K early in training: Eq. 6's fallback handles it, and the
        # stage logs it per iteration (`fallback`), so scikit-learn's warning is noise here
        warnings.simplefilter("ignore", ConvergenceWarning)
        return KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(data).labels_


def relation_target(assignments: np.ndarray, n_clusters: int, min_ratio: float) -> tuple[torch.Tensor, bool]:
    """Eq. 6: r_ij = 1 if c_i = c_j or i = j, else 0, an (M, M) float matrix.

    The code's guard (not in the paper): when k-means returns fewer than K clusters, or its
    smallest cluster has fewer than min_ratio M / K members, r = I (every distinct pair is a
    negative). Returns (r, whether the guard fired)."""
    labels = torch.as_tensor(np.asarray(assignments), dtype=torch.long)
    sizes = torch.bincount(labels, minlength=n_clusters)
    degenerate = bool((sizes > 0).sum() < n_clusters or sizes.min() < min_ratio * len(labels) / n_clusters)
    if degenerate:
        return torch.eye(len(labels)), True
    return (labels[:, None] == labels[None, :]).float(), False


def transformation_invariance_loss(augmented: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_T, Eq. 4: -(1/m) Σ_i l^t_i · l̂_i, a dot product with the balanced target of the same
    image's un-augmented view (not a cross-entropy), averaged over the sub-batch."""
    return -(augmented * target).sum(dim=1).mean()


def separability_loss(augmented: torch.Tensor, relations: torch.Tensor) -> torch.Tensor:
    """L_R, Eq. 7: BCE(d_ij, r_ij) with d the cosine similarity of two label features (the
    paper's "cosine distance"), clamped to [0, 1], averaged over the pairs i >= j of the
    sub-batch (the diagonal included: m (m + 1) / 2 pairs, as the code selects them)."""
    unit = augmented / (augmented.norm(dim=1, keepdim=True) + EPS)
    similarity = (unit @ unit.T).clamp(0.0, 1.0)
    rows, cols = torch.tril_indices(len(augmented), len(augmented), device=augmented.device)
    # binary_cross_entropy clamps log at -100 like nn.BCELoss in the code
    return F.binary_cross_entropy(_finite(similarity[rows, cols]), relations[rows, cols].to(similarity.dtype))


def entropy_loss(label_features: torch.Tensor) -> torch.Tensor:
    """L_E, Eq. 8: Σ_h p_h log p_h with p = the mean label feature over the rows given (the
    code's sub-batch of m2 images, Sec. 3.4 writes M), each p_h floored at EPS as the code
    does. Minimal (-log K) when the rows spread evenly over the K clusters."""
    mean = label_features.mean(dim=0).clamp_min(EPS)
    return (mean * torch.log(mean)).sum()


def attention_loss(attention: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_A, Eq. 10: (1/K) Σ_h BCE(l^a_ih, l̂^a_ih), averaged over the sub-batch: the attention
    branch's output regresses to the sharpened target of Eq. 11."""
    return F.binary_cross_entropy(_finite(attention), target.to(attention.dtype))


def _finite(probabilities: torch.Tensor) -> torch.Tensor:
    """NaN inputs of a diverged network as 0.5, so that binary_cross_entropy does not raise in
    the middle of an iteration (a device-side assert on CUDA): the NaN still reaches Eq. 3
    through the entropy term of the same outputs, and the stage stops at the iteration's
    finiteness check naming it, as every other stage does."""
    return torch.nan_to_num(probabilities, nan=0.5)


def gatcluster_objective(parts: dict[str, torch.Tensor], weights: tuple[float, float, float]) -> torch.Tensor:
    """Eq. 3 on one sub-batch: L_R + α1 L_T + α2 L_E + α3 L_A, with L_E = L_E(l^t) + L_E(l^a)
    (Sec. 3.4) and (α1, α2, α3) = `weights` (params.LOSS_WEIGHTS: the code's 5/3/5 or the
    paper's 5/5/3). `parts` holds the terms in use (an ablated task is absent: 0)."""
    t_weight, e_weight, a_weight = weights
    zero = next(iter(parts.values())).new_zeros(())
    return (parts.get("r", zero) + t_weight * parts.get("t", zero)
            + e_weight * (parts.get("e", zero) + parts.get("e_att", zero)) + a_weight * parts.get("a", zero))
