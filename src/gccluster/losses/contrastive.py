"""Stage I contrastive loss (GCC Eq. 1, SimCLR's NT-Xent)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """GCC Eq. 1: NT-Xent over the 2B views of a batch.

    z_a, z_b: (B, D) embeddings of two augmented views; row i of z_a and row i of z_b are
    the positive pair. sim(.,.) is cosine similarity, divided by `temperature` (tau).

    For each of the 2B views, the loss is -log( exp(s_pos) / sum_{j != i} exp(s_ij) ): the
    denominator runs over the other 2B - 1 views, the positive included, as in SimCLR.

    Choices the paper leaves open:
    - Eq. 1 sums over the B anchors X_i only; we average over all 2B anchors (each view
      serves as anchor once). Sum vs. mean only rescales the learning rate, and the
      symmetric form is SimCLR's.
    - Eq. 1 writes sim(F(X_i), F(X_j)); as in SimCLR (and SCAN) the similarity is taken on
      a projection g(F(X)) that is dropped after pretraining; K-means and the cluster
      head use F(X).

    Returns the scalar mean loss.
    """
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise ValueError(f"nt_xent needs two (B, D) tensors of equal shape, got {z_a.shape}, {z_b.shape}")
    batch = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))  # j != i
    positives = torch.cat([torch.arange(batch, 2 * batch), torch.arange(batch)]).to(z.device)
    return F.cross_entropy(logits, positives)
