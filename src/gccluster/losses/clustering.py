"""Stage I clustering-head loss (GCC Eq. 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pseudo_label_cross_entropy(logits: torch.Tensor, pseudo_labels: torch.Tensor) -> torch.Tensor:
    """GCC Eq. 2: cross-entropy of the head's softmax against K-means pseudo labels.

    logits: (B, K) = C(F(X)) with F frozen; pseudo_labels: (B,) cluster indices from K-means.
    The paper writes a sum over samples; we average over the batch (only rescales the
    learning rate). Returns the scalar mean loss.
    """
    return F.cross_entropy(logits.float(), pseudo_labels)
