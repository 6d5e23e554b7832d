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


MMD_ESTIMATORS = ("unbiased", "biased")


def mmd_per_cluster(
    real_features: torch.Tensor,
    real_clusters: torch.Tensor,
    generated_features: torch.Tensor,
    generated_clusters: torch.Tensor,
    bandwidth: torch.Tensor | float,
    estimator: str = "unbiased",
) -> torch.Tensor:
    """L_d of Eq. 8-9: Σ_k ( d_r^k + d_g^k - 2 d_rg^k ), the per-cluster squared MMD in the RKHS
    of a Gaussian kernel between real features of cluster k (k = the head's prediction) and
    generated features conditioned on k.

    Choices the paper leaves open:
    - Normalisation: the printed denominators of Eq. 9 are inconsistent (d_r^k is divided by
      a sum of kernel values of generated pairs). We use the one that makes each term an
      estimate of the squared distance of Eq. 8 between kernel mean embeddings: d_r^k, d_g^k
      and d_rg^k are means of K over pairs. Eq. 8 writes sums, not means; means keep clusters
      of different sizes on one scale.
    - Estimator (`gcc.mmd_estimator`):
      `unbiased` (default): d_r^k and d_g^k average over pairs i != j (the U-statistic of
      Gretton et al. 2012, Eq. 3), so two i.i.d. samples of one distribution give 0 in
      expectation; a cluster needs at least two members on each side, else it has no term.
      `biased`: the V-statistic with the pairs i = i kept (K = 1 there). It is >= 0, but for
      two samples of the same distribution it has a floor of about (1 - mean K) (1/n_r + 1/n_g)
      per cluster (0.07-0.37 at B = 128, K = 10 with the median bandwidth), so it also acts as
      an unstated compactness term weighted 1/n_k.
    - Clusters absent from either side of the batch contribute nothing (no anchor to match).
    - Kernel: Gaussian; bandwidth given by the caller (`median_bandwidth` or a number).
    """
    if estimator not in MMD_ESTIMATORS:
        raise ValueError(f"estimator must be one of {MMD_ESTIMATORS}, got {estimator!r}")
    unbiased = estimator == "unbiased"
    k_rr = gaussian_kernel(real_features, real_features, bandwidth)
    k_gg = gaussian_kernel(generated_features, generated_features, bandwidth)
    k_rg = gaussian_kernel(real_features, generated_features, bandwidth)
    total = real_features.new_zeros(())
    shared = set(real_clusters.tolist()) & set(generated_clusters.tolist())
    for k in sorted(shared):
        r = real_clusters == k
        g = generated_clusters == k
        n_r, n_g = int(r.sum()), int(g.sum())
        if unbiased and (n_r < 2 or n_g < 2):
            continue
        d_r = _mean_within(k_rr[r][:, r], unbiased)
        d_g = _mean_within(k_gg[g][:, g], unbiased)
        d_rg = k_rg[r][:, g].mean()
        total = total + d_r + d_g - 2.0 * d_rg
    return total


def _mean_within(kernel: torch.Tensor, unbiased: bool) -> torch.Tensor:
    """Mean of a square within-set kernel matrix; over the pairs i != j when `unbiased`."""
    if not unbiased:
        return kernel.mean()
    n = kernel.shape[0]
    return (kernel.sum() - kernel.diagonal().sum()) / (n * (n - 1))


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


def reliable_metric_loss(generated_scores: torch.Tensor, generated_clusters: torch.Tensor,
                         reduction: str = "sum") -> torch.Tensor:
    """L_ml of Eq. 11: Σ_i Σ_k 1[p̃_ik > p̃_ij] (p̃_ik - p̃_ij)², j = the conditioning cluster of
    generated image i, p̃_i = the head's scores for x̃_i.

    Only clusters that out-score the conditioning cluster are pushed down to it, so an
    image may keep other plausible clusters as long as its own is on top.

    Reduction over the batch (`gcc.ml_reduction`): "sum", as Eq. 11 is printed and unlike
    Eq. 9 and 10, which are means; or "mean" over images (our default before this was
    checked against the paper). The two are not a rescaled learning rate of each other: C
    gets gradients from L_ml alone, but F's gradient in Eq. 12 adds L_ml to L_d and L_cwm,
    so the sum weighs L_ml B times (B = the generated batch) more against them than the mean.

    Which scores (`gcc.ml_scores`): the paper writes p̃_i = C(F(x̃_i)) and calls p_i = C(F(x_i))
    "the logits" (3.2.2, Eq. 2), so read literally Eq. 11 compares logits. We default to their
    softmax (DESIGN.md §4): on probabilities every term is bounded by 1 and the loss cannot be
    lowered by shrinking all logits towards each other (on logits, scaling C's last layer
    down scales L_ml down quadratically without changing any prediction). The caller passes
    the (N, K) scores; this function is the same for both readings.
    """
    p_j = generated_scores.gather(1, generated_clusters[:, None])
    excess = (generated_scores - p_j).clamp_min(0.0)  # = 1[p_k > p_j] (p_k - p_j)
    per_image = excess.pow(2).sum(dim=1)
    if reduction == "sum":
        return per_image.sum()
    if reduction == "mean":
        return per_image.mean()
    raise ValueError(f"reduction = {reduction!r}: allowed 'sum' (Eq. 11 as printed) or 'mean'")


def head_scores(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """The p̃ of Eq. 11 from the head's logits: their softmax, or the logits themselves."""
    if kind == "softmax":
        return torch.softmax(logits.float(), dim=1)
    if kind == "logits":
        return logits.float()
    raise ValueError(f"kind must be 'softmax' or 'logits', got {kind!r}")


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
