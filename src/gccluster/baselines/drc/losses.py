"""DRC's losses (Zhong et al. 2020, Sec. 3), one function per equation.

Notation: a batch of N rows and K clusters; z, z' (N, K) are the assignment features (the
main head's logits) of the original and the augmented views, p = softmax(z) row-wise, and
q_k = p[:, k] is the "assignment probability" column of cluster k.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def similarity_matrix(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """(rows of a) . (rows of b)^T: raw dot products (`dot`, Eq. 4 and 7 as printed) or
    cosine similarities (`cosine`: both sides L2-normalised first, as PICA's cluster-level
    loss; a zero row, e.g. an empty cluster's column, has similarity 0 with everything)."""
    if kind == "cosine":
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    elif kind != "dot":
        raise ValueError(f"similarity must be 'cosine' or 'dot', got {kind!r}")
    return a @ b.T


def assignment_feature_loss(features: torch.Tensor, augmented: torch.Tensor, temperature: float,
                            similarity: str = "cosine") -> torch.Tensor:
    """L_AF, Eq. 5: -(1/N) Σ_i log[exp(s(z_i, z'_i)/T) / Σ_j exp(s(z_i, z'_j)/T)], T = T_AF.

    An instance-level contrast of assignment features: anchors are the rows of `features`,
    candidates the rows of `augmented` (the positive among them), one direction only, as
    Eq. 5 is written. Training passes 2N rows on both sides (originals repeated).
    Under PICA's repeat-2 the two copies of an original are both anchors, so each also meets
    its own image's other view as a "negative" (a benign raise of the loss floor; not masked).
    """
    logits = similarity_matrix(features, augmented, similarity) / temperature
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def assignment_probability_loss(probabilities: torch.Tensor, augmented: torch.Tensor, temperature: float,
                                similarity: str = "cosine") -> torch.Tensor:
    """L_AP, Eq. 8: -(1/K) Σ_k log[exp(s(q_k, q'_k)/T) / Σ_l exp(s(q_k, q'_l)/T)], T = T_AP.

    The same contrast one level up, between the K columns of the probability matrices: a
    cluster should contain the same images in both views and differ from every other cluster
    (PICA's partition uncertainty index, with a temperature)."""
    logits = similarity_matrix(probabilities.T, augmented.T, similarity) / temperature
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def cluster_regularisation_loss(probabilities: torch.Tensor) -> torch.Tensor:
    """L_CR, Eq. 9: (1/N) Σ_k (Σ_n p_nk)^2, the squared norm of the soft cluster sizes over N.

    N/K for equal soft sizes (its minimum), N when every row falls in one cluster. Uniform rows
    score the same as a balanced one-hot assignment: this term spreads images over clusters, it
    does not make them confident (L_AP does)."""
    sizes = probabilities.sum(dim=0)
    return (sizes * sizes).sum() / len(probabilities)


def drc_objective(af: torch.Tensor, ap: torch.Tensor, cr: torch.Tensor, cr_weight: float,
                  af_weight: float = 1.0, ap_weight: float = 1.0) -> torch.Tensor:
    """Eq. 10: L = L_AF + L_AP + λ L_CR (λ = 0.005 in the paper). `af_weight` and `ap_weight`
    are 1 in the paper; 0 removes a term for the ablations of Table 2."""
    return af_weight * af + ap_weight * ap + cr_weight * cr
