"""Stage II losses of GCC (Eq. 8-12): calibrating the clustering branch with generated images.

Shapes: real features f_r (B, D) with the head's predicted clusters ŷ (B,); generated
features f_g (M, D) with their conditioning clusters ỹ (M,); head probabilities p̃ (M, K)
of the generated images. Every function returns a scalar tensor and never picks a device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: torch.Tensor | float) -> torch.Tensor:
    """K(a_i, b_j) = exp(-||a_i - b_j||² / (2 σ²)) for all pairs: (N, D), (M, D) -> (N, M)."""
    sq_dist = torch.cdist(a.float(), b.float()).pow(2)
    return torch.exp(-sq_dist / (2.0 * bandwidth**2))


def median_bandwidth(features: torch.Tensor) -> torch.Tensor:
    """The median heuristic: σ = median pairwise distance among `features` (no gradient)."""
    with torch.no_grad():
        dist = torch.pdist(features.float())
        if dist.numel() == 0:
            return torch.tensor(1.0, device=features.device)
        return dist.median().clamp_min(1e-6)


def mmd_per_cluster(
    real_features: torch.Tensor,
    real_clusters: torch.Tensor,
    generated_features: torch.Tensor,
    generated_clusters: torch.Tensor,
    bandwidth: torch.Tensor | float,
) -> torch.Tensor:
    """L_d of Eq. 8-9: Σ_k ( d_r^k + d_g^k - 2 d_rg^k ), the per-cluster squared MMD in the RKHS
    of a Gaussian kernel between real features of cluster k (k = the head's prediction) and
    generated features conditioned on k.

    Choices the paper leaves open:
    - Normalisation: the printed denominators of Eq. 9 are inconsistent (d_r^k is divided by
      a sum of kernel values of generated pairs). We use the one that makes each term the
      squared distance of Eq. 8 between kernel mean embeddings:
      d_r^k = mean_{i,j in R_k} K(r_i, r_j), d_g^k = mean_{i,j in G_k} K(g_i, g_j),
      d_rg^k = mean_{i in R_k, j in G_k} K(r_i, g_j) (biased V-statistic, diagonals kept),
      so every cluster term is >= 0 and 0 when both sets coincide. Eq. 8 writes sums, not
      means; means keep clusters of different sizes on one scale.
    - Clusters absent from either side of the batch contribute nothing (no anchor to match).
    - Kernel: Gaussian; bandwidth given by the caller (`median_bandwidth` or a number).
    """
    k_rr = gaussian_kernel(real_features, real_features, bandwidth)
    k_gg = gaussian_kernel(generated_features, generated_features, bandwidth)
    k_rg = gaussian_kernel(real_features, generated_features, bandwidth)
    total = real_features.new_zeros(())
    shared = set(real_clusters.tolist()) & set(generated_clusters.tolist())
    for k in sorted(shared):
        r = real_clusters == k
        g = generated_clusters == k
        d_r = k_rr[r][:, r].mean()
        d_g = k_gg[g][:, g].mean()
        d_rg = k_rg[r][:, g].mean()
        total = total + d_r + d_g - 2.0 * d_rg
    return total


def cluster_wise_matching(generated_features: torch.Tensor, generated_clusters: torch.Tensor) -> torch.Tensor:
    """L_cwm of Eq. 10: mean cosine similarity of generated features with different labels
    minus mean cosine similarity of those with equal labels.

    Minimising it spreads clusters apart (first term) and tightens each (second term).
    Choices the paper leaves open: sim is cosine similarity (as in Eq. 1); the pairs i = j
    are left out of the equal-label mean (their similarity is always 1 and carries no
    signal); a term with no pairs (all labels equal, or all distinct) is 0.
    """
    unit = torch.nn.functional.normalize(generated_features.float(), dim=1)
    sim = unit @ unit.T
    same = generated_clusters[:, None] == generated_clusters[None, :]
    eye = torch.eye(len(generated_clusters), dtype=torch.bool, device=same.device)
    different = ~same
    same = same & ~eye
    inter = sim[different].mean() if different.any() else sim.new_zeros(())
    intra = sim[same].mean() if same.any() else sim.new_zeros(())
    return inter - intra


def reliable_metric_loss(generated_probs: torch.Tensor, generated_clusters: torch.Tensor) -> torch.Tensor:
    """L_ml of Eq. 11: Σ_k 1[p̃_ik > p̃_ij] (p̃_ik - p̃_ij)², j = the conditioning cluster of
    generated image i, p̃_i = softmax(C(F(x̃_i))).

    Only clusters that out-score the conditioning cluster are pushed down to it, so an
    image may keep other plausible clusters as long as its own is on top. The paper sums
    over the batch; we average over images (only rescales the learning rate).
    """
    p_j = generated_probs.gather(1, generated_clusters[:, None])
    excess = (generated_probs - p_j).clamp_min(0.0)  # = 1[p_k > p_j] (p_k - p_j)
    return excess.pow(2).sum(dim=1).mean()


@dataclass(frozen=True)
class CalibrationWeights:
    d: float = 1.0
    cwm: float = 1.0
    ml: float = 1.0


def gcc_objective(
    parts: dict[str, torch.Tensor], weights: CalibrationWeights
) -> torch.Tensor:
    """Eq. 12: w_d L_d + w_cwm L_cwm + w_ml L_ml (the paper: all weights 1).

    A weight of 0 gives the GCC-d / GCC-cwm / GCC-ml ablations of Fig. 2a.
    """
    return weights.d * parts["d"] + weights.cwm * parts["cwm"] + weights.ml * parts["ml"]
